import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pino from 'pino';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { trustsync as cli } from '../support/cli.js';
import { FlowRunner } from '../../src/flow/run-flow.js';
import { waitForConvergence } from '../../src/demo/row-compare.js';
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

  it('an unknown role or database stops `trustsync run` with exit 2, the field to check and no password or stack trace', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'trustsync-access-'));
    for (const [what, url] of [
      ['role', `postgres://no_such_role:${password}@127.0.0.1:${settings.ports.postgres}/trustsync_dest`],
      ['database', `postgres://postgres:${password}@127.0.0.1:${settings.ports.postgres}/no_such_database`],
    ] as const) {
      const file = join(dir, `${what}.yaml`);
      writeFileSync(
        file,
        stringify({
          flow: `access-${what}`,
          source: { brokers: ['127.0.0.1:1'], decoding: 'json' },
          destination: { url, tables: [{ topic: 't', table: 's.t' }] },
        }),
      );
      const r = await cli(['run', '--config', file]);
      expect(r.status, r.stderr).toBe(2);
      expect(r.stderr).toMatch(new RegExp(`${what} "no_such_${what}" does not exist`));
      expect(r.stderr).toContain('fix: check the user, password and database');
      expect(r.stderr).toContain('destination.url');
      expect(r.stdout + r.stderr).not.toContain(password);
      expect(r.stderr).not.toMatch(/\n +at /);
    }
  });
});
