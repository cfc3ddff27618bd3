import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type pg from 'pg';
import { stringify } from 'yaml';
import { runWorkload } from '../../src/demo/workload.js';
import { SyncFixture } from '../support/fixture.js';
import { flowDocument, spawnRun } from '../support/flow.js';
import { exited, killMidStream } from '../support/crash.js';
import { waitForConvergence } from '../../src/demo/row-compare.js';

/**
 * Invariant 3: offsets move only after the write is durable, so killing `trustsync run` with SIGKILL
 * at any moment loses nothing, and what it re-reads after a restart is absorbed by the guards.
 */
describe('kill -9 of trustsync run, again and again, mid-stream', () => {
  const f = new SyncFixture('crash');
  const { schema, destSchema } = f;
  const tables = ['customers', 'orders'];
  const dir = mkdtempSync(join(tmpdir(), 'trustsync-crash-'));
  const flowFile = join(dir, 'flow.yaml');
  const logFile = join(dir, 'run.log');
  let source: pg.Client;
  let dest: pg.Client;
  const pairs = f.pairs(tables);

  const startRun = (): ChildProcess => spawnRun(flowFile, logFile);

  /** How many times this test's keys were written so far (first writes and moves of the ledger). */
  const ledgerWrites = async () =>
    (
      await dest.query(`SELECT (SELECT count(*) FROM ${destSchema}.ledger_moves) + (SELECT count(*) FROM trustsync.key_positions WHERE target LIKE $1) AS n`, [
        `${destSchema}.%`,
      ])
    ).rows[0].n as string;

  beforeAll(async () => {
    ({ source, dest } = await f.open({ demoTables: true }));
    await runWorkload(source, schema, 100, 3);
    // Every move of the position ledger for this test's tables, to prove none ever went backwards.
    await dest.query(`CREATE TABLE ${destSchema}.ledger_moves (target text, key text, old_position numeric, new_position numeric)`);
    await dest.query(`CREATE FUNCTION ${destSchema}.record_move() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.target LIKE '${destSchema}.%' THEN
          INSERT INTO ${destSchema}.ledger_moves VALUES (NEW.target, NEW.key, OLD.position, NEW.position);
        END IF;
        RETURN NEW;
      END $$`);
    // Only moves of the position: filling a TOASTed column updates the key's row without one.
    await dest.query(
      `CREATE TRIGGER ${destSchema}_moves AFTER UPDATE ON trustsync.key_positions FOR EACH ROW WHEN (OLD.position IS DISTINCT FROM NEW.position) EXECUTE FUNCTION ${destSchema}.record_move()`,
    );
    await f.captureTables(tables, 'json').start();
    const doc = flowDocument({
      name: schema,
      topics: f.flowTables(tables),
      extra: { batch: { maxRows: 50, maxWaitMs: 50 }, log: { level: 'warn' } },
    });
    writeFileSync(flowFile, stringify(doc));
  });

  afterAll(async () => {
    await dest?.query(`DROP TRIGGER IF EXISTS ${destSchema}_moves ON trustsync.key_positions`);
    await f.close();
  });

  it('ends with the destination equal to the source, row for row, no position ever applied out of order, and history matching the data', async () => {
    await killMidStream(schema, 5, startRun, async () => Number(await ledgerWrites()));

    const last = startRun();
    await waitForConvergence(source, dest, pairs, 120_000);
    // A clean stop drains and exits 0.
    const exit = exited(last);
    last.kill('SIGTERM');
    expect(await exit).toEqual({ code: 0, signal: null });

    const { rows } = await dest.query(
      `SELECT count(*)::int AS moves, count(*) FILTER (WHERE new_position <= old_position)::int AS backwards FROM ${destSchema}.ledger_moves`,
    );
    expect(rows[0].moves).toBeGreaterThan(0);
    expect(rows[0].backwards).toBe(0);

    // History and data were written in one transaction, killed or not: for every key, the position the
    // ledger holds is exactly the newest position the history says was applied — no write without its
    // history, no history of a write that did not happen.
    const { rows: mismatched } = await dest.query(
      `SELECT kp.target, kp.key, kp.position::text AS ledger, h.applied::text AS history
         FROM trustsync.key_positions kp
         LEFT JOIN LATERAL (SELECT max(position) AS applied FROM trustsync.history h WHERE h.target = kp.target AND h.key = kp.key AND h.decision = 'applied') h ON true
        WHERE kp.target LIKE $1 AND h.applied IS DISTINCT FROM kp.position`,
      [`${destSchema}.%`],
    );
    expect(mismatched).toEqual([]);
    const { rows: counted } = await dest.query(`SELECT count(*)::int AS n FROM trustsync.key_positions WHERE target LIKE $1`, [`${destSchema}.%`]);
    expect(counted[0].n).toBeGreaterThan(0);
  });
});
