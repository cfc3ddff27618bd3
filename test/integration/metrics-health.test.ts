import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { demoDestinationSql } from '../../src/demo/schema.js';
import type { FlowRunner } from '../../src/flow/run-flow.js';
import { waitForConvergence } from '../../src/demo/row-compare.js';
import { endpoints, pgClient } from '../support/capture.js';
import { SyncFixture } from '../support/fixture.js';
import { flowConfig, startFlow } from '../support/flow.js';

/** What an SRE sees: counts that equal what happened, and readiness that follows the destination. */
describe('metrics and health of a running flow', () => {
  const f = new SyncFixture('observe');
  const tables = ['customers'];
  // A destination database of its own, so this test can take it away without touching the others.
  const database = `${f.schema}_db`;
  let admin: pg.Client;
  let dest: pg.Client;
  let runner: FlowRunner;
  let base: string;

  const scrape = async () => (await (await fetch(`${base}/metrics`)).text()).split('\n');
  const value = (lines: string[], name: string, labels: Record<string, string>) => {
    const line = lines.find((l) => l.startsWith(`${name}{`) && Object.entries(labels).every(([k, v]) => l.includes(`${k}="${v}"`)));
    return line === undefined ? 0 : Number(line.split(' ').pop());
  };
  const status = async (path: string) => (await fetch(`${base}${path}`)).status;

  beforeAll(async () => {
    await f.open({ demoTables: true });
    admin = await pgClient('postgres');
    await admin.query(`CREATE DATABASE ${database}`);
    dest = new pg.Client(endpoints.postgresUrl(database));
    // This test ends every session on its database, its own included.
    dest.on('error', () => undefined);
    await dest.connect();
    await dest.query(demoDestinationSql(f.destSchema));
    // One row before capture starts, so the topic exists when the flow starts.
    await f.source.query(`INSERT INTO ${f.schema}.customers (id, email, name) VALUES (1, 'a@x', 'A')`);
    await f.captureTables(tables, 'json').start();
    const config = flowConfig({ name: f.schema, topics: f.flowTables(tables), extra: { metrics: { port: 0 } } });
    config.destinationUrl = endpoints.postgresUrl(database);
    runner = f.runner = await startFlow(config);
    base = runner.metricsAddress!.replace('/metrics', '');
    await waitForConvergence(f.source, dest, f.pairs(tables));
  });

  afterAll(async () => {
    await f.close();
    await dest?.end().catch(() => undefined);
    await admin?.query(`ALTER DATABASE ${database} ALLOW_CONNECTIONS true`);
    await admin?.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
    await admin?.end();
  });

  it('counts exactly what happened at the source', async () => {
    for (let id = 2; id <= 31; id++) await f.source.query(`INSERT INTO ${f.schema}.customers (id, email, name) VALUES ($1, $2, 'x')`, [id, `c${id}@x`]);
    // Applied before the updates come, so no insert is superseded within a batch.
    await waitForConvergence(f.source, dest, f.pairs(tables));
    for (let id = 2; id <= 11; id++) await f.source.query(`UPDATE ${f.schema}.customers SET tier = 'gold' WHERE id = $1`, [id]);
    await waitForConvergence(f.source, dest, f.pairs(tables));
    const topic = f.capture!.topic('customers');
    const deadline = Date.now() + 30_000;
    let lines = await scrape();
    while (value(lines, 'trustsync_events_total', { decision: 'received' }) < 41 && Date.now() < deadline) lines = await scrape();
    // 1 snapshot read + 30 inserts + 10 updates: every one applied.
    expect(value(lines, 'trustsync_events_total', { topic, decision: 'received' })).toBe(41);
    expect(value(lines, 'trustsync_events_total', { topic, decision: 'applied', reason: 'c' })).toBe(30);
    expect(value(lines, 'trustsync_events_total', { topic, decision: 'applied', reason: 'u' })).toBe(10);
    expect(value(lines, 'trustsync_events_total', { topic, decision: 'applied', reason: 'r' })).toBe(1);
    expect(value(lines, 'trustsync_end_to_end_seconds_count', { topic })).toBe(41);
    expect(value(lines, 'trustsync_dead_letters_total', { topic })).toBe(0);
    expect(value(lines, 'trustsync_dlq_depth', {})).toBe(0);
    for (let p = 0; p < 6; p++) expect(value(lines, 'trustsync_consumer_lag_messages', { topic, partition: String(p) })).toBe(0);
    expect(lines.some((l) => l.startsWith('trustsync_apply_seconds_bucket'))).toBe(true);
  });

  it('is alive and ready; unready while the destination is gone; ready again when it is back', async () => {
    expect(await status('/healthz')).toBe(200);
    expect(await status('/readyz')).toBe(200);
    await admin.query(`ALTER DATABASE ${database} ALLOW_CONNECTIONS false`);
    await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`, [database]);
    expect(await status('/readyz')).toBe(503);
    expect(await (await fetch(`${base}/readyz`)).text()).toContain('destination unreachable');
    expect(await status('/healthz')).toBe(200);
    await admin.query(`ALTER DATABASE ${database} ALLOW_CONNECTIONS true`);
    expect(await status('/readyz')).toBe(200);
  });
});
