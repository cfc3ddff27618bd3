import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { Partitioners, type Kafka, type Producer } from 'kafkajs';
import { largeNote } from '../../src/demo/schema.js';
import { runWorkload } from '../../src/demo/workload.js';
import { createDecoder, type FlowRunner } from '../../src/flow/run-flow.js';
import { kafkaClient, pgClient, readRecords, type Variant } from '../support/capture.js';
import { SyncFixture } from '../support/fixture.js';
import { flowConfig, startFlow } from '../support/flow.js';
import { compareTables, waitForConvergence } from '../../src/demo/row-compare.js';
import { explainKey } from '../../src/sink/postgres/explain-sql.js';
import { formatExplanation } from '../../src/history/explain.js';

/**
 * The apply engine against real Debezium events: whatever order, duplication or concurrency the
 * source and Kafka produce, the destination ends equal to the source, row for row.
 */
describe.each<Variant>(['json', 'avro'])('trustsync run applies real Debezium changes (%s)', (variant) => {
  const f = new SyncFixture(`apply_${variant}`);
  const { schema, destSchema } = f;
  const tables = ['customers', 'orders'];
  const pairs = f.pairs(tables);
  let source: pg.Client;
  let dest: pg.Client;
  let kafka: Kafka;
  let producer: Producer;
  let runner: FlowRunner;

  beforeAll(async () => {
    ({ source, dest } = await f.open({ demoTables: true }));
    // Rows that exist before capture starts arrive through the snapshot.
    await runWorkload(source, schema, 60, 1);

    const capture = f.captureTables(tables, variant);
    // The source keeps changing while Debezium snapshots it.
    const writer = await pgClient('trustsync_source');
    let writing = true;
    const background = (async () => {
      let seed = 100;
      while (writing) await runWorkload(writer, schema, 10, seed++);
    })();
    await capture.start();
    await new Promise((r) => setTimeout(r, 1500));
    writing = false;
    await background;
    await writer.end();

    kafka = kafkaClient();
    producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
    await producer.connect();
    runner = f.runner = await startFlow(flowConfig({ name: schema, decoding: variant, topics: f.flowTables(tables) }));
  });

  afterAll(async () => {
    await producer?.disconnect();
    await f.close();
  });

  it('converges on the source after a snapshot taken while the source was being written', async () => {
    await waitForConvergence(source, dest, pairs);
    expect(await runner.metrics.total('applied')).toBeGreaterThan(0);
  });

  it('orders interleaved concurrent transactions by commit, not by when their statements ran', async () => {
    const a = await pgClient('trustsync_source');
    const b = await pgClient('trustsync_source');
    try {
      await source.query(`INSERT INTO ${schema}.customers (id, email, name) VALUES (9001, 'x@a', 'start'), (9002, 'y@a', 'start')`);
      await a.query('BEGIN');
      await a.query(`UPDATE ${schema}.customers SET name = 'A first' WHERE id = 9001`);
      await b.query('BEGIN');
      await b.query(`UPDATE ${schema}.customers SET name = 'B' WHERE id = 9002`);
      await b.query('COMMIT');
      // A wrote first but commits last: its value must be the one that stays.
      await a.query(`UPDATE ${schema}.customers SET name = 'A last' WHERE id = 9002`);
      await a.query('COMMIT');
    } finally {
      await a.end();
      await b.end();
    }
    await waitForConvergence(source, dest, pairs);
    const { rows } = await dest.query(`SELECT id::text, name FROM ${destSchema}.customers WHERE id IN (9001, 9002) ORDER BY id`);
    expect(rows).toEqual([
      { id: '9001', name: 'A first' },
      { id: '9002', name: 'A last' },
    ]);
  });

  it('keeps a TOASTed column an update did not touch (never writes the placeholder)', async () => {
    await source.query(`INSERT INTO ${schema}.customers (id, email, name, notes) VALUES (9100, 'n@a', 'noted', $1)`, [largeNote(9100, 1)]);
    await source.query(`UPDATE ${schema}.customers SET tier = 'gold' WHERE id = 9100`);
    await waitForConvergence(source, dest, pairs);
    const { rows } = await dest.query(`SELECT tier, notes FROM ${destSchema}.customers WHERE id = 9100`);
    expect(rows[0].tier).toBe('gold');
    expect(rows[0].notes).toBe(largeNote(9100, 1));
  });

  it('never resurrects a deleted row when an old update is delivered again after the delete', async () => {
    await source.query(`INSERT INTO ${schema}.customers (id, email, name) VALUES (9200, 'd@a', 'doomed')`);
    await source.query(`UPDATE ${schema}.customers SET name = 'updated' WHERE id = 9200`);
    await source.query(`DELETE FROM ${schema}.customers WHERE id = 9200`);
    // The delete leaves a tombstone in the ledger, carrying its position.
    const tombstone = async () =>
      (await dest.query(`SELECT deleted FROM trustsync.key_positions WHERE target = $1 AND key = '9200'`, [`${destSchema}.customers`])).rows[0]?.deleted ===
      true;
    const deadline0 = Date.now() + 60_000;
    while (!(await tombstone()) && Date.now() < deadline0) await new Promise((r) => setTimeout(r, 200));
    expect(await tombstone()).toBe(true);
    const staleBefore = await runner.metrics.total('skipped', 'stale');

    // Re-deliver the update record, byte for byte, to its partition after the delete.
    const records = await readRecords(kafka, f.capture!.topic('customers'), 1);
    const decoder = createDecoder(runner.config);
    let update: (typeof records)[number] | undefined;
    for (const r of records) {
      const d = await decoder.decode({
        key: r.key,
        value: r.value,
        origin: { topic: f.capture!.topic('customers'), partition: r.partition, offset: r.offset },
      });
      if (d.kind === 'change' && d.op === 'u' && d.keyText === '9200') update = r;
    }
    expect(update).toBeDefined();
    await producer.send({ topic: f.capture!.topic('customers'), messages: [{ key: update!.key, value: update!.value, partition: update!.partition }] });

    const deadline = Date.now() + 30_000;
    while ((await runner.metrics.total('skipped', 'stale')) === staleBefore && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    expect(await runner.metrics.total('skipped', 'stale')).toBeGreaterThan(staleBefore);
    const { rowCount } = await dest.query(`SELECT 1 FROM ${destSchema}.customers WHERE id = 9200`);
    expect(rowCount).toBe(0);
    expect(await compareTables(source, dest, pairs[0]![0], pairs[0]![1])).toEqual({ missing: [], extra: [], wrong: [] });

    // The history tells the story: the row written, deleted, and the late update refused, with why.
    const story = await explainKey(dest, `${destSchema}.customers`, '9200');
    const decisions = story.timeline.map((t) => `${t.decision} ${t.op}`);
    expect(decisions).toContain('applied d');
    expect(decisions[decisions.length - 1]).toBe('skipped-stale u');
    expect(story.timeline[story.timeline.length - 1]!.reason).toContain('newer change');
    expect(story.ledger?.deleted).toBe(true);
    expect(formatExplanation(story)).toContain('now: deleted (tombstone kept)');
    expect(story.believed).toBeNull();

    // What trustsync believes of a live record, one field at a time, now and before it first heard of it.
    const noted = await explainKey(dest, `${destSchema}.customers`, '9100', { field: 'tier' });
    expect(noted.believed).toEqual({ tier: 'gold' });
    const first = new Date(new Date(noted.timeline[0]!.decidedAt).getTime() - 1);
    const before = await explainKey(dest, `${destSchema}.customers`, '9100', { at: first });
    expect(before.timeline).toEqual([]);
    expect(before.believed).toBeNull();
    expect((await explainKey(dest, `${destSchema}.customers`, '9100')).believed?.notes).toBe(largeNote(9100, 1));
  });

  it('stays equal to the source through a stream of inserts, updates and deletes', async () => {
    await runWorkload(source, schema, 400, 2024);
    await waitForConvergence(source, dest, pairs);
    expect(await runner.metrics.total('dead_lettered')).toBe(0);
  });
});
