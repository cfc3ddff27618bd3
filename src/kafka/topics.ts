import kafkajs, { type Admin } from 'kafkajs';
import { SchemaIncompatible } from '../model/errors.js';

/** Creates the topic if it is missing and returns once every partition has a leader. */
export async function ensureTopic(admin: Admin, topic: string, numPartitions: number, configEntries: { name: string; value: string }[] = []): Promise<void> {
  if (!(await admin.listTopics()).includes(topic)) {
    await admin.createTopics({ topics: [{ topic, numPartitions, replicationFactor: 1, configEntries }], waitForLeaders: false }).catch((err: Error) => {
      if (!/already exists/i.test(err.message)) throw err;
    });
  }
  await waitForLeaders(admin, topic);
}

/**
 * A topic just created may be unknown to the broker answering metadata for a moment; kafkajs's own
 * wait gives up on that answer, so wait here until every partition has a leader.
 */
export async function waitForLeaders(admin: Admin, topic: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const { topics } = await admin.fetchTopicMetadata({ topics: [topic] });
      const partitions = topics[0]?.partitions ?? [];
      if (partitions.length > 0 && partitions.every((p) => p.leader >= 0)) return;
    } catch (err) {
      const type = (err as { type?: string }).type;
      if (type !== 'UNKNOWN_TOPIC_OR_PARTITION' && type !== 'LEADER_NOT_AVAILABLE') throw err;
    }
    if (Date.now() > deadline) throw new Error(`topic ${topic} has no leader after ${timeoutMs / 1000}s`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Answers meaning the partition's leader is moving or not serving yet: asking again shortly succeeds. */
const LEADER_SETTLING = new Set(['NOT_LEADER_FOR_PARTITION', 'LEADER_NOT_AVAILABLE']);

/**
 * A topic's offsets per partition. Just after a topic is created, or after the broker restarts,
 * the leader metadata names may not serve offsets yet; kafkajs's admin gives up on that answer at
 * once, so ask again here, with fresh metadata, until the leader has settled.
 */
export async function topicOffsets(admin: Admin, topic: string, timeoutMs = 30_000): Promise<Awaited<ReturnType<Admin['fetchTopicOffsets']>>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await admin.fetchTopicOffsets(topic);
    } catch (err) {
      if (!LEADER_SETTLING.has((err as { type?: string }).type ?? '') || Date.now() > deadline) throw err;
    }
    await new Promise((r) => setTimeout(r, 200));
    await admin.fetchTopicMetadata({ topics: [topic] }).catch(() => undefined);
  }
}

/** Creates a state topic compacted, or checks that an existing one is: it must keep each record's latest state. */
export async function ensureStateTopic(admin: Admin, topic: string, partitions: number): Promise<void> {
  await ensureTopic(admin, topic, partitions, [{ name: 'cleanup.policy', value: 'compact' }]);
  const described = await admin.describeConfigs({
    resources: [{ type: kafkajs.ConfigResourceTypes.TOPIC, name: topic, configNames: ['cleanup.policy'] }],
    includeSynonyms: false,
  });
  const policy = described.resources[0]?.configEntries.find((c) => c.configName === 'cleanup.policy')?.configValue ?? '';
  if (!policy.split(',').includes('compact')) {
    throw new SchemaIncompatible(
      `state topic ${topic} exists with cleanup.policy=${policy}: it would not keep each record's latest state`,
      `kafka-configs.sh --alter --topic ${topic} --add-config cleanup.policy=compact (or choose another state topic)`,
    );
  }
}
