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

  it('reports lag per partition, in records and in time, and STOPPED for a group behind with no member consuming', async () => {
    const r = await lag(['--group', behind]);
    expect(r.status).toBe(1);
    const [v] = JSON.parse(r.stdout);
    expect(v.status).toBe('STOPPED');
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

  it('reports ERR for a group that never committed, and exits 2', async () => {
    const r = await lag(['--group', uniqueName('lag-none')]);
    expect(r.status).toBe(2);
    expect(JSON.parse(r.stdout)[0].status).toBe('ERR');
  });

  it('shows a live member as kafka-consumer-groups does: offsets, consumer id and host', async () => {
    const live = uniqueName('lag-live');
    const consumer = kafkaClient().consumer({ groupId: live });
    await consumer.connect();
    try {
      await consumer.subscribe({ topics: [topic], fromBeginning: true });
      let seen = 0;
      await consumer.run({ eachMessage: async () => void seen++ });
      const deadline = Date.now() + 30_000;
      while (seen < 20 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      await consumer.commitOffsets([0, 1].map((partition) => ({ topic, partition, offset: '10' })));
      const r = await trustsync(['lag', '--group', live, '--samples', '2', '--window', '0.5']);
      expect(r.status).toBe(0);
      const lines = r.stdout.split('\n');
      expect(lines[0]).toMatch(/^GROUP\s+TOPIC\s+PARTITION\s+CURRENT-OFFSET\s+LOG-END-OFFSET\s+LAG\s+TIME-LAG\s+CONSUMER-ID\s+HOST\s+STATUS/);
      const row = lines.find((l) => l.includes(topic) && /\s0\s+10\s+10\s+0\s/.test(l));
      expect(row, r.stdout).toMatch(/trustsync-[\w-]+\s+\/127\.0\.0\.1\s+OK/);
    } finally {
      await consumer.disconnect();
      await admin.deleteGroups([live]).catch(() => undefined);
    }
  });

  it("leaves Kafka Connect's worker group out, and names it: it consumes no partitions", async () => {
    const all = await lag([]);
    expect(JSON.parse(all.stdout).map((v: { group: string }) => v.group)).not.toContain('trustsync-connect');
    const named = await lag(['--group', 'trustsync-connect']);
    expect(named.status).toBe(2);
    expect(JSON.parse(named.stdout)[0]).toMatchObject({ status: 'ERR', reason: expect.stringMatching(/Kafka Connect's worker group/) });
  });
});
