import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { runWorkload } from '../../src/demo/workload.js';
import { waitForConvergence } from '../../src/reconcile/row-compare.js';
import { pgClient } from '../support/capture.js';
import { SyncFixture } from '../support/fixture.js';
import { flowConfig, startFlow } from '../support/flow.js';
import { killConnect, pauseBroker, restoreStack, resumeBroker } from '../support/faults.js';

/**
 * Faults injected on the real stack while the source keeps changing; after recovery the destination
 * equals the source row by row, and no position was ever applied over a newer one.
 */
describe('faults on the real stack, each with nothing lost', () => {
  const f = new SyncFixture('faults');
  const { schema, destSchema } = f;
  const tables = ['customers', 'orders'];
  const pairs = f.pairs(tables);
  let source: pg.Client;
  let dest: pg.Client;
  let seed = 7000;

  /** Writes at the source in the background until `stop` is called. */
  const background = async () => {
    const writer = await pgClient('trustsync_source');
    let writing = true;
    const done = (async () => {
      while (writing) await runWorkload(writer, schema, 15, seed++);
    })();
    return async () => {
      writing = false;
      await done;
      await writer.end();
    };
  };
  const noneBackwards = async () => {
    const { rows } = await dest.query(
      `SELECT count(*)::int AS n FROM trustsync.history h WHERE h.target LIKE $1 AND h.decision = 'applied'
          AND EXISTS (SELECT 1 FROM trustsync.history e WHERE e.target = h.target AND e.key = h.key AND e.decision = 'applied' AND e.id < h.id AND e.position > h.position)`,
      [`${destSchema}.%`],
    );
    return rows[0].n as number;
  };

  beforeAll(async () => {
    ({ source, dest } = await f.open({ demoTables: true }));
    await runWorkload(source, schema, 80, 41);
    await f.captureTables(tables, 'json').start();
    f.runner = await startFlow(flowConfig({ name: schema, topics: f.flowTables(tables) }));
    await waitForConvergence(source, dest, pairs);
  });

  afterAll(async () => {
    resumeBroker();
    await restoreStack();
    await f.close();
  });

  it('Kafka Connect killed with SIGKILL mid-stream, then restarted: Debezium resumes, nothing lost', async () => {
    const stop = await background();
    await new Promise((r) => setTimeout(r, 1500));
    killConnect();
    await new Promise((r) => setTimeout(r, 1500));
    await stop();
    await restoreStack();
    await f.capture!.start();
    await waitForConvergence(source, dest, pairs, 120_000);
    expect(await noneBackwards()).toBe(0);
  });

  it('the broker frozen (SIGSTOP) for ten seconds, then resumed: the flow rides it out', async () => {
    const stop = await background();
    await new Promise((r) => setTimeout(r, 1000));
    pauseBroker();
    await new Promise((r) => setTimeout(r, 10_000));
    resumeBroker();
    await stop();
    await waitForConvergence(source, dest, pairs, 120_000);
    expect(await noneBackwards()).toBe(0);
  });

  it('a 20,000-row source transaction applies whole, and an aborted one leaves no trace', async () => {
    await source.query('BEGIN');
    await source.query(`INSERT INTO ${schema}.customers (id, email, name) SELECT g, 'bulk' || g || '@x', 'Bulk ' || g FROM generate_series(900000, 919999) g`);
    await source.query('COMMIT');
    await source.query('BEGIN');
    await source.query(`INSERT INTO ${schema}.customers (id, email, name) SELECT g, 'never' || g || '@x', 'Never ' || g FROM generate_series(950000, 950999) g`);
    await source.query('ROLLBACK');
    await waitForConvergence(source, dest, pairs, 180_000);
    expect(Number((await dest.query(`SELECT count(*) FROM ${destSchema}.customers WHERE id >= 900000`)).rows[0].count)).toBe(20_000);
  });

  it('the consumer group reset to the beginning: everything replayed, nothing regresses', async () => {
    await f.runner!.stop();
    const admin = (await import('../support/capture.js')).kafkaClient().admin();
    await admin.connect();
    for (const t of tables) await admin.resetOffsets({ groupId: `trustsync-${schema}`, topic: f.capture!.topic(t), earliest: true });
    await admin.disconnect();
    const since = new Date();
    const records = async () => {
      const a = (await import('../support/capture.js')).kafkaClient().admin();
      await a.connect();
      let n = 0;
      for (const t of tables) for (const o of await a.fetchTopicOffsets(f.capture!.topic(t))) n += Number(o.high) - Number(o.low);
      await a.disconnect();
      return n;
    };
    const total = await records();
    f.runner = await startFlow(flowConfig({ name: schema, topics: f.flowTables(tables) }));
    // Every record comes again; all of it is older than or equal to what the destination holds.
    const deadline = Date.now() + 120_000;
    while ((await f.runner.metrics.total('received')) < total && Date.now() < deadline) await new Promise((r) => setTimeout(r, 250));
    await new Promise((r) => setTimeout(r, 1000));
    await waitForConvergence(source, dest, pairs, 120_000);
    const skipped = await f.runner.metrics.total('skipped');
    expect(skipped).toBeGreaterThan(0);
    expect(await f.runner.metrics.total('applied')).toBe(0);
    expect(await noneBackwards()).toBe(0);
    // Every skip counted is also on record.
    const { rows } = await dest.query(
      `SELECT count(*)::int AS n FROM trustsync.history WHERE target LIKE $1 AND decided_at >= $2 AND decision IN ('superseded', 'skipped-stale', 'skipped-duplicate')`,
      [`${destSchema}.%`, since],
    );
    expect(rows[0].n).toBe(skipped);
  });
});
