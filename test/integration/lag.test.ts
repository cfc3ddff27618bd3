import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Partitioners, type Admin } from 'kafkajs';
import { trustsync } from '../support/cli.js';
import { kafkaClient, uniqueName } from '../support/capture.js';
import { ensureTopic } from '../../src/kafka/topics.js';

const lag = (args: string[]) => trustsync(['lag', '--json', '--samples', '2', '--interval', '0.5', ...args]);

/** `trustsync lag` reads any group's committed offsets against the log end, as SREs need. */
describe('trustsync lag', () => {
  const topic = uniqueName('lagtopic');
  const behind = uniqueName('lag-behind');
  const current = uniqueName('lag-current');
  let admin: Admin;

  beforeAll(async () => {
    const kafka = kafkaClient();
    admin = kafka.admin();
    await admin.connect();
    await ensureTopic(admin, topic, 2);
    const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
    await producer.connect();
    // Written an hour ago (CreateTime), so the time lag is known exactly.
    const anHourAgo = Date.now() - 3_600_000;
    await producer.send({ topic, messages: Array.from({ length: 20 }, (_, i) => ({ value: `m${i}`, partition: i % 2, timestamp: String(anHourAgo + i) })) });
    await producer.disconnect();
    // One group stopped 3 records short on each partition, one that read everything.
    await admin.setOffsets({
      groupId: behind,
      topic,
      partitions: [
        { partition: 0, offset: '7' },
        { partition: 1, offset: '7' },
      ],
    });
    await admin.setOffsets({
      groupId: current,
      topic,
      partitions: [
        { partition: 0, offset: '10' },
        { partition: 1, offset: '10' },
      ],
    });
  });

  afterAll(async () => {
    await admin.deleteGroups([behind, current]).catch(() => undefined);
    await admin.deleteTopics({ topics: [topic] });
    await admin.disconnect();
  });

  it('reports lag per partition, in records and in time, and STALLED for a group whose offsets do not move', async () => {
    const r = await lag(['--group', behind]);
    expect(r.status).toBe(1);
    const [v] = JSON.parse(r.stdout);
    expect(v.status).toBe('STALLED');
    expect(v.totalLag).toBe(6);
    expect(v.partitions.map((p: { partition: number; lag: number }) => [p.partition, p.lag])).toEqual([
      [0, 3],
      [1, 3],
    ]);
    // The oldest record not yet consumed was written an hour ago.
    for (const p of v.partitions) {
      expect(p.ageSeconds).toBeGreaterThan(3590);
      expect(p.ageSeconds).toBeLessThan(3700);
    }
  });

  it('reports OK for a caught-up group and exits 0', async () => {
    const r = await lag(['--group', current]);
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)[0]).toMatchObject({ status: 'OK', totalLag: 0, partitions: [{ ageSeconds: 0 }, { ageSeconds: 0 }] });
  });

  it('reports ERR for a group that never committed', async () => {
    const r = await lag(['--group', uniqueName('lag-none')]);
    expect(r.status).toBe(1);
    expect(JSON.parse(r.stdout)[0].status).toBe('ERR');
  });
});
