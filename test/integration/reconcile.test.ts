import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import pino from 'pino';
import { runWorkload } from '../../src/demo/workload.js';
import { validateFlow, type FlowConfig } from '../../src/flow/config.js';
import { reconcileFlow, type Difference } from '../../src/reconcile/reconcile.js';
import { waitForConvergence } from '../../src/demo/row-compare.js';
import { endpoints } from '../support/capture.js';
import { SyncFixture } from '../support/fixture.js';
import { flowDocument, startFlow } from '../support/flow.js';
import { waitFor } from '../support/wait.js';

/**
 * Drift injected behind trustsync's back is found exactly — counts and bucket hashes first, rows
 * and fields of the differing buckets only — each difference with the action its policy allows;
 * --repair fixes those, on record, and a second run is clean.
 */
describe('trustsync reconcile', () => {
  const f = new SyncFixture('recon');
  const { schema, destSchema } = f;
  const tables = ['customers', 'orders'];
  let source: pg.Client;
  let dest: pg.Client;
  let config: FlowConfig;
  const options = { buckets: 16, settleMs: 0, repair: false, progress: () => undefined, log: pino({ level: 'silent' }) };
  const summary = (ds: Difference[]) => ds.map((d) => `${d.kind} ${d.key}${d.field ? ` ${d.field}` : ''} → ${d.recommendedAction}`).sort();

  beforeAll(async () => {
    ({ source, dest } = await f.open({ demoTables: true }));
    await runWorkload(source, schema, 200, 21);
    await f.captureTables(tables, 'json').start();
    config = validateFlow(flowDocument({ name: schema, topics: f.flowTables(tables), sourceDatabase: endpoints.postgresUrl('trustsync_source') }), 'flow.yaml');
    f.runner = await startFlow(config);
    await waitForConvergence(source, dest, f.pairs(tables));
    await f.runner.stop();
    f.runner = undefined;
  });

  afterAll(() => f.close());

  it('finds nothing when the destination equals the source', async () => {
    const r = await reconcileFlow(config, options);
    expect(r.clean).toBe(true);
    expect(r.tables.map((t) => [t.destination, t.mismatchedBuckets, t.differences.length])).toEqual([
      [`${destSchema}.customers`, 0, 0],
      [`${destSchema}.orders`, 0, 0],
    ]);
  });

  it('finds exactly the injected drift, repairs it on record, and then runs clean', async () => {
    const ids = (await dest.query(`SELECT id::text FROM ${destSchema}.customers ORDER BY id LIMIT 3`)).rows.map((r) => r.id as string);
    await dest.query(`DELETE FROM ${destSchema}.customers WHERE id IN (${ids[0]}, ${ids[1]})`);
    await dest.query(`UPDATE ${destSchema}.customers SET tier = 'drifted' WHERE id = ${ids[2]}`);
    await dest.query(`INSERT INTO ${destSchema}.orders (id, customer_id, amount) VALUES (987654, ${ids[2]}, 1.00)`);

    const found = await reconcileFlow(config, options);
    expect(found.clean).toBe(false);
    expect(summary(found.tables[0]!.differences)).toEqual(
      [`field ${ids[2]} tier → update-destination`, `missing ${ids[0]} → update-destination`, `missing ${ids[1]} → update-destination`].sort(),
    );
    expect(summary(found.tables[1]!.differences)).toEqual(['extra 987654 → delete-destination']);
    expect(found.tables[0]!.differences.find((d) => d.kind === 'field')).toMatchObject({ destination: 'drifted' });
    // Level 3 looked only at the buckets whose counts or hashes differed.
    expect(found.tables[0]!.mismatchedBuckets).toBeLessThanOrEqual(3);

    const repaired = await reconcileFlow(config, { ...options, repair: true });
    expect(repaired.tables.flatMap((t) => t.differences).every((d) => d.repaired)).toBe(true);
    const history = await dest.query(`SELECT key, op FROM trustsync.history WHERE target LIKE $1 AND decision = 'repaired' ORDER BY key`, [`${destSchema}.%`]);
    expect(history.rows.map((r) => `${r.op} ${r.key}`).sort()).toEqual([`c ${ids[0]}`, `c ${ids[1]}`, `u ${ids[2]}`, 'd 987654'].sort());

    const again = await reconcileFlow(config, options);
    expect(again.clean).toBe(true);
    expect(again.tables.flatMap((t) => t.differences)).toEqual([]);
    await waitForConvergence(source, dest, f.pairs(tables), 5000);
  });

  it('leaves a row the flow writes between reconcile finding its difference and repairing it to the flow', async () => {
    // Two rows only the destination has: one stays extra, the other the source gains while reconcile is about to repair.
    await dest.query(
      `INSERT INTO ${destSchema}.customers (id, email, name) VALUES (987700, 'early@example.com', 'Early'), (987701, 'extra@example.com', 'Extra')`,
    );
    const report = await reconcileFlow(config, {
      ...options,
      repair: true,
      progress: async (line: string) => {
        if (!line.trim().startsWith('repairing')) return;
        await source.query(`INSERT INTO ${schema}.customers (id, email, name) VALUES (987700, 'source@example.com', 'Source')`);
        f.runner = await startFlow(config);
        await waitFor(
          async () => (await dest.query(`SELECT 1 FROM ${destSchema}.customers WHERE id = 987700 AND email = 'source@example.com'`)).rowCount === 1,
          'the flow to apply customer 987700',
        );
        await f.runner.stop();
        f.runner = undefined;
      },
    });
    expect(summary(report.tables[0]!.differences)).toEqual(['extra 987701 → delete-destination']);
    expect(report.tables[0]!.differences[0]!.repaired).toBe(true);
    expect(report.tables[0]!.settled).toBe(1);
    const rows = await dest.query(`SELECT id::int, email FROM ${destSchema}.customers WHERE id IN (987700, 987701)`);
    expect(rows.rows).toEqual([{ id: 987700, email: 'source@example.com' }]);
  });

  it('does not report a difference that moves between its two looks as drift', async () => {
    // A change the flow has not applied yet moves while reconcile waits: in flight, not drift.
    const id = (await source.query(`SELECT id::text FROM ${schema}.customers ORDER BY id LIMIT 1`)).rows[0].id as string;
    await source.query(`UPDATE ${schema}.customers SET tier = 'moving-1' WHERE id = ${id}`);
    const pending = reconcileFlow(config, { ...options, settleMs: 1500 });
    await new Promise((r) => setTimeout(r, 700));
    await source.query(`UPDATE ${schema}.customers SET tier = 'moving-2' WHERE id = ${id}`);
    const r = await pending;
    expect(r.tables[0]!.settled).toBeGreaterThan(0);
    expect(r.tables[0]!.differences.filter((d) => d.key === id)).toEqual([]);
  });
});
