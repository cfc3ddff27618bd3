import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pino from 'pino';
import { FlowRunner } from '../../src/flow/run-flow.js';
import { waitForConvergence } from '../../src/reconcile/row-compare.js';
import { endpoints, settings } from '../support/capture.js';
import { SyncFixture } from '../support/fixture.js';
import { flowConfig } from '../support/flow.js';

/** Names from events never become SQL, and credentials never reach the logs. */
describe('hostile names and secrets', () => {
  const f = new SyncFixture('secure');
  const hostile = 'x"; DROP TABLE secure_victim; --';
  const password = 'pw-that-must-not-leak';
  const lines: string[] = [];
  let runner: FlowRunner;

  beforeAll(async () => {
    await f.open();
    await f.dest.query('CREATE TABLE IF NOT EXISTS public.secure_victim (id int)');
    await f.source.query(`CREATE SCHEMA ${f.schema}; CREATE TABLE ${f.schema}.t (id int PRIMARY KEY, "${hostile.replaceAll('"', '""')}" text)`);
    await f.source.query(`INSERT INTO ${f.schema}.t VALUES (1, 'one'), (2, $1)`, ["'); DELETE FROM x; --"]);
    await f.captureTables(['t'], 'json').start();
    const config = flowConfig({ name: f.schema, topics: f.flowTables(['t']), extra: { log: { level: 'debug' } } });
    // Trust authentication ignores the password; the flow still holds it in its URL.
    config.destinationUrl = `postgres://postgres:${password}@${settings.host}:${settings.ports.postgres}/trustsync_dest`;
    const log = pino({ level: 'debug' }, { write: (line: string) => void lines.push(line) });
    runner = f.runner = new FlowRunner(config, log);
    await runner.start();
  });

  afterAll(async () => {
    await f.dest?.query('DROP TABLE IF EXISTS public.secure_victim');
    await f.close();
  });

  it('creates and fills a column whose name is an SQL injection, quoted, and nothing else happens', async () => {
    await waitForConvergence(f.source, f.dest, f.pairs(['t']));
    const { rows } = await f.dest.query(`SELECT "${hostile.replaceAll('"', '""')}" AS v FROM ${f.destSchema}.t ORDER BY id`);
    expect(rows.map((r) => r.v)).toEqual(['one', "'); DELETE FROM x; --"]);
    expect((await f.dest.query(`SELECT to_regclass('public.secure_victim') IS NOT NULL AS present`)).rows[0].present).toBe(true);
  });

  it('never writes the destination password to its logs', () => {
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.some((l) => l.includes('flow running'))).toBe(true);
    expect(lines.filter((l) => l.includes(password))).toEqual([]);
    expect(endpoints.kafkaBrokers[0]).toMatch(/^127\.0\.0\.1:/);
  });
});
