import { randomUUID } from 'node:crypto';
import { AssignerProtocol, type Admin, type Kafka } from 'kafkajs';
import { evaluateLag, partitionLag, type GroupVerdict, type LagSample, type PartitionLag, type PartitionOwner } from './lag-status.js';
import { topicOffsets } from '../kafka/topics.js';

/** One look at a group: its committed offsets against each partition's log end. */
export async function sampleGroupLag(admin: Admin, groupId: string): Promise<LagSample> {
  const committed = await admin.fetchOffsets({ groupId });
  const partitions: PartitionLag[] = [];
  for (const { topic, partitions: offsets } of committed) {
    if (offsets.every((o) => o.offset === '-1')) continue;
    const ends = new Map((await topicOffsets(admin, topic)).map((o) => [o.partition, o]));
    for (const o of offsets) {
      const end = ends.get(o.partition);
      if (end) partitions.push(lagAt(topic, o.partition, o.offset, end));
    }
  }
  partitions.sort((a, b) => a.topic.localeCompare(b.topic) || a.partition - b.partition);
  return { at: Date.now(), partitions };
}

/**
 * The lag of some partitions of a group (a member's own), read from the broker: log end against the
 * group's commit; a partition the group never committed is behind by all it holds.
 */
export async function sampleAssignedLag(admin: Admin, groupId: string, assignment: ReadonlyMap<string, readonly number[]>): Promise<PartitionLag[]> {
  const topics = [...assignment.keys()];
  if (topics.length === 0) return [];
  const committed = await admin.fetchOffsets({ groupId, topics });
  const out: PartitionLag[] = [];
  for (const { topic, partitions } of committed) {
    const ends = new Map((await topicOffsets(admin, topic)).map((o) => [o.partition, o]));
    for (const partition of assignment.get(topic) ?? []) {
      const end = ends.get(partition);
      if (end) out.push(lagAt(topic, partition, partitions.find((p) => p.partition === partition)?.offset ?? '-1', end));
    }
  }
  return out;
}

/**
 * Which member owns each partition (`topic/partition`), from the group's current assignment; a
 * group that is not a plain consumer group (Kafka Connect's workers) has no partitions to own.
 */
export async function partitionOwners(admin: Admin, groupId: string): Promise<Map<string, PartitionOwner>> {
  const owners = new Map<string, PartitionOwner>();
  const [group] = (await admin.describeGroups([groupId])).groups;
  if (!group || group.protocolType !== 'consumer') return owners;
  for (const m of group.members) {
    const decoded = m.memberAssignment.length ? AssignerProtocol.MemberAssignment.decode(m.memberAssignment) : null;
    for (const [topic, partitions] of Object.entries(decoded?.assignment ?? {}))
      for (const p of partitions) owners.set(`${topic}/${p}`, { consumerId: m.memberId, host: m.clientHost });
  }
  return owners;
}

/** A partition's lag from the group's committed offset as Kafka gives it ('-1': none yet) and the log's ends. */
function lagAt(topic: string, partition: number, offset: string, end: { low: string; high: string }): PartitionLag {
  const committed = offset === '-1' ? null : BigInt(offset);
  const [low, high] = [BigInt(end.low), BigInt(end.high)];
  return { topic, partition, committed, low, high, lag: partitionLag(committed, low, high) };
}

/** Samples a group `count` times, `intervalMs` apart, and judges the window (who owns what: as of the last sample). */
export async function watchGroupLag(
  admin: Admin,
  groupId: string,
  count: number,
  intervalMs: number,
): Promise<{ samples: LagSample[]; verdict: GroupVerdict }> {
  const samples: LagSample[] = [];
  for (let i = 0; i < count; i++) {
    if (i > 0) await new Promise((r) => setTimeout(r, intervalMs));
    samples.push(await sampleGroupLag(admin, groupId));
  }
  return { samples, verdict: evaluateLag(samples, await partitionOwners(admin, groupId)) };
}

export interface PartitionRef {
  topic: string;
  partition: number;
  offset: bigint;
}

/**
 * Time lag: the age (seconds) of the record at each given offset — a group's oldest record not yet
 * consumed. Read with a short-lived consumer in a group of its own that commits nothing and is
 * deleted afterwards; a record not found within the timeout has no known age.
 */
export async function recordAges(kafka: Kafka, refs: readonly PartitionRef[], timeoutMs = 10_000): Promise<Map<string, number>> {
  const ages = new Map<string, number>();
  if (refs.length === 0) return ages;
  const id = (topic: string, partition: number) => `${topic}/${partition}`;
  const wanted = new Map(refs.map((r) => [id(r.topic, r.partition), r]));
  const groupId = `trustsync-lag-probe-${randomUUID()}`;
  const consumer = kafka.consumer({ groupId, allowAutoTopicCreation: false, maxWaitTimeInMs: 200 });
  const admin = kafka.admin();
  await Promise.all([consumer.connect(), admin.connect()]);
  try {
    await consumer.subscribe({ topics: [...new Set(refs.map((r) => r.topic))] });
    let found: () => void = () => undefined;
    const all = new Promise<void>((r) => (found = r));
    await consumer.run({
      autoCommit: false,
      eachMessage: async ({ topic, partition, message }) => {
        const key = id(topic, partition);
        const ref = wanted.get(key);
        if (!ref || ages.has(key) || BigInt(message.offset) < ref.offset) return;
        ages.set(key, Math.max(0, (Date.now() - Number(message.timestamp)) / 1000));
        consumer.pause([{ topic, partitions: [partition] }]);
        if (ages.size === wanted.size) found();
      },
    });
    for (const r of refs) consumer.seek({ topic: r.topic, partition: r.partition, offset: r.offset.toString() });
    await Promise.race([all, new Promise((r) => setTimeout(r, timeoutMs))]);
  } finally {
    await consumer.disconnect().catch(() => undefined);
    await admin.deleteGroups([groupId]).catch(() => undefined);
    await admin.disconnect().catch(() => undefined);
  }
  return ages;
}
