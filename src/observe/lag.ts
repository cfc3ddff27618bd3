import type { Admin } from 'kafkajs';
import { evaluateLag, partitionLag, type GroupVerdict, type LagSample, type PartitionLag } from './lag-status.js';

/** One look at a group: its committed offsets against each partition's log end. */
export async function sampleGroupLag(admin: Admin, groupId: string): Promise<LagSample> {
  const committed = await admin.fetchOffsets({ groupId });
  const partitions: PartitionLag[] = [];
  for (const { topic, partitions: offsets } of committed) {
    if (offsets.every((o) => o.offset === '-1')) continue;
    const ends = new Map((await admin.fetchTopicOffsets(topic)).map((o) => [o.partition, o]));
    for (const o of offsets) {
      const end = ends.get(o.partition);
      if (!end) continue;
      const c = o.offset === '-1' ? null : BigInt(o.offset);
      const low = BigInt(end.low);
      const high = BigInt(end.high);
      partitions.push({ topic, partition: o.partition, committed: c, low, high, lag: partitionLag(c, low, high) });
    }
  }
  partitions.sort((a, b) => a.topic.localeCompare(b.topic) || a.partition - b.partition);
  return { at: Date.now(), partitions };
}

/** Samples a group `count` times, `intervalMs` apart, and judges the window. */
export async function watchGroupLag(admin: Admin, groupId: string, count: number, intervalMs: number): Promise<{ samples: LagSample[]; verdict: GroupVerdict }> {
  const samples: LagSample[] = [];
  for (let i = 0; i < count; i++) {
    if (i > 0) await new Promise((r) => setTimeout(r, intervalMs));
    samples.push(await sampleGroupLag(admin, groupId));
  }
  return { samples, verdict: evaluateLag(samples) };
}
