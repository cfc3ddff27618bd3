import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import type { FlowConfig } from '../../src/flow/config.js';
import type { FlowRunner } from '../../src/flow/run-flow.js';
import { TrustsyncError } from '../../src/model/errors.js';
import { runWorkload } from '../../src/demo/workload.js';
import { SyncFixture } from '../support/fixture.js';
import { flowConfig, startFlow } from '../support/flow.js';
import { waitForConvergence } from '../../src/demo/row-compare.js';

describe('the destination follows the source schema, and stops where following would lose data (avro)', () => {
  const f = new SyncFixture('evolve');
  const { schema, destSchema } = f;
  const pairs = f.pairs(['items']);
  let source: pg.Client;
  let dest: pg.Client;
  let config: FlowConfig;

  beforeAll(async () => {
    ({ source, dest } = await f.open());
    await source.query(`CREATE SCHEMA ${schema}; CREATE TABLE ${schema}.items (id bigint PRIMARY KEY, name text NOT NULL, points integer NOT NULL)`);
    await source.query(`INSERT INTO ${schema}.items SELECT g, 'item ' || g, g * 10 FROM generate_series(1, 20) g`);
    await f.captureTables(['items'], 'avro').start();
    // The destination table does not exist: the flow creates it from the Avro schema's field types.
    config = flowConfig({ name: schema, decoding: 'avro', topics: f.flowTables(['items']) });
    f.runner = await startFlow(config);
  });

  afterAll(() => f.close());

  it('creates a missing destination table with the source types', async () => {
    await waitForConvergence(source, dest, pairs);
    const { rows } = await dest.query(
      `SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'items' ORDER BY ordinal_position`,
      [destSchema],
    );
    expect(rows).toEqual([
      { column_name: 'id', data_type: 'bigint' },
      { column_name: 'name', data_type: 'text' },
      { column_name: 'points', data_type: 'integer' },
    ]);
  });

  it('adds a column the source added', async () => {
    await source.query(`ALTER TABLE ${schema}.items ADD COLUMN note text`);
    await source.query(`UPDATE ${schema}.items SET note = 'noted' WHERE id <= 5`);
    await waitForConvergence(source, dest, pairs);
  });

  it('stops with a clear error on a change it cannot follow, loses nothing, and resumes after the fix', async () => {
    await source.query(`ALTER TABLE ${schema}.items ALTER COLUMN points TYPE bigint`);
    await source.query(`UPDATE ${schema}.items SET points = 5000000000 WHERE id = 1`);
    const timeout = new Promise((r) => setTimeout(() => r('the flow kept running'), 60_000));
    const err = await Promise.race([
      f.runner!.done.then(
        () => 'the flow stopped cleanly',
        (e: unknown) => e,
      ),
      timeout,
    ]);
    expect(err).toBeInstanceOf(TrustsyncError);
    expect((err as TrustsyncError).code).toBe('schema-incompatible');
    expect((err as TrustsyncError).message).toContain(`${destSchema}.items.points is integer`);
    expect((err as TrustsyncError).fix).toMatch(/alter the destination column/);
    expect((await dest.query(`SELECT points FROM ${destSchema}.items WHERE id = 1`)).rows[0].points).toBe(10);

    await dest.query(`ALTER TABLE ${destSchema}.items ALTER COLUMN points TYPE bigint`);
    f.runner = await startFlow(config);
    await waitForConvergence(source, dest, pairs);
  });
});

describe('transient destination failures are retried, holding only the partition', () => {
  const f = new SyncFixture('flaky');
  const { schema } = f;
  const tables = ['customers', 'orders'];
  let runner: FlowRunner;

  beforeAll(async () => {
    await f.open({ demoTables: true });
    await runWorkload(f.source, schema, 30, 5);
    await f.captureTables(tables, 'json').start();
    runner = f.runner = await startFlow(flowConfig({ name: schema, topics: f.flowTables(tables), extra: { batch: { maxRows: 20, maxWaitMs: 20 } } }));
  });

  afterAll(() => f.close());

  it('converges although its destination connections are killed again and again', async () => {
    let killing = true;
    const killer = (async () => {
      while (killing) {
        await f.dest.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1`, [`trustsync:${schema}`]);
        await new Promise((r) => setTimeout(r, 150));
      }
    })();
    try {
      await runWorkload(f.source, schema, 600, 77);
      const deadline = Date.now() + 30_000;
      while ((await runner.metrics.retries.get()).values.reduce((n, v) => n + v.value, 0) < 3 && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 200));
    } finally {
      killing = false;
      await killer;
    }
    await waitForConvergence(f.source, f.dest, f.pairs(tables));
    const retries = (await runner.metrics.retries.get()).values.reduce((n, v) => n + v.value, 0);
    expect(retries).toBeGreaterThan(0);
    expect(await runner.metrics.total('dead_lettered')).toBe(0);
  });
});
