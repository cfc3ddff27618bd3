import type { Admin } from 'kafkajs';

/** Creates the topic if it is missing and returns once every partition has a leader. */
export async function ensureTopic(admin: Admin, topic: string, numPartitions: number): Promise<void> {
  if (!(await admin.listTopics()).includes(topic)) {
    await admin.createTopics({ topics: [{ topic, numPartitions, replicationFactor: 1 }], waitForLeaders: false }).catch((err: Error) => {
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
