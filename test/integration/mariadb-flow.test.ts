import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mariadb, { type Pool } from 'mariadb';
import type pg from 'pg';
import { parse, stringify } from 'yaml';
import { runCanary } from '../../src/observe/canary.js';
import { validateFlow } from '../../src/flow/config.js';
import { runWorkload } from '../../src/demo/workload.js';
import { endpoints, kafkaClient, pgClient, SourceCapture, uniqueName } from '../support/capture.js';
import { readStateTopic } from '../support/state.js';
import { PACKAGE_DIR } from '../../src/stack/settings.js';
import { createDemoSchema } from '../../src/demo/schema.js';
import { flowDocument, spawnRun } from '../support/flow.js';
import { exited, killMidStream } from '../support/crash.js';
import { waitForCrossConvergence } from '../support/cross-compare.js';
import { trustsync } from '../support/cli.js';

/**
 * PostgreSQL → Debezium → trustsync → MariaDB, as a user runs it: tables created from the source's
 * shape, `trustsync run` killed with SIGKILL again and again mid-stream, and at the end every row
 * and value equal to the source's, the ledger never moved backwards, and explain tells a record.
 */
describe('a flow from PostgreSQL into MariaDB, killed again and again', () => {
  const schema = uniqueName('mdbflow');
  const database = `${schema}_dst`;
  const url = endpoints.mariadbUrl(database);
  const dir = mkdtempSync(join(tmpdir(), 'trustsync-mariadb-'));
  const flowFile = join(dir, 'flow.yaml');
  const logFile = join(dir, 'run.log');
  const tables = ['customers', 'orders'];
  const columns: Record<string, string[]> = {
    customers: ['email', 'name', 'tier', 'balance', 'profile', 'notes', 'updated_at'],
    orders: ['customer_id', 'amount', 'status', 'placed_at'],
  };
  let source: pg.Client;
  let admin: Pool;
  let capture: SourceCapture;

  const ledgerMoves = async () => Number((await admin.query(`SELECT count(*) AS n FROM ${database}.ledger_moves`))[0].n);

  beforeAll(async () => {
    source = await pgClient('trustsync_source');
    await createDemoSchema(source, schema);
    await runWorkload(source, schema, 100, 3);
    // The canary table's topic appears with its first captured row: the flow waits for every topic it maps.
    await source.query(`INSERT INTO ${schema}.trustsync_canary VALUES ('seed', now(), 'seed', 0, '[]')`);
    admin = mariadb.createPool({ host: '127.0.0.1', port: Number(new URL(url).port), user: 'root', connectionLimit: 2, multipleStatements: true });
    await admin.query(`CREATE DATABASE ${database}`);
    // The ledger's every move of this flow's keys, to prove none ever went backwards.
    await admin.query(`CREATE TABLE ${database}.ledger_moves (target VARCHAR(255), old_position DECIMAL(40,0), new_position DECIMAL(40,0))`);
    await admin.query(`CREATE DATABASE IF NOT EXISTS trustsync`);
    // The flow creates trustsync's tables at start; the trigger needs the ledger first.
    const { openSink } = await import('../../src/sink/kinds.js');
    const sink = openSink(url, { name: 'setup', connections: 1 });
    await sink.prepare();
    await sink.close();
    await admin.query(`CREATE TRIGGER trustsync.${database}_moves AFTER UPDATE ON trustsync.key_positions FOR EACH ROW
      IF NEW.target LIKE '${database}.%' AND NEW.position <> OLD.position THEN
        INSERT INTO ${database}.ledger_moves VALUES (NEW.target, OLD.position, NEW.position);
      END IF`);
    // The canary table rides along: canaries time this flow end to end (written at the source, read back from MariaDB).
    capture = new SourceCapture(schema, schema, [...tables, 'trustsync_canary'], 'avro');
    await capture.start();
    const doc = flowDocument({
      name: schema,
      decoding: 'avro',
      destinationUrl: url,
      sourceDatabase: endpoints.postgresUrl('trustsync_source'),
      topics: [...tables, 'trustsync_canary'].map(
        (t) =>
          ({
            topic: capture.topic(t),
            table: `${database}.${t}`,
            createIfMissing: true,
            // The customers' current rows also go to a compacted Avro state topic, read back from MariaDB.
            ...(t === 'customers' ? { state: { schema: join(PACKAGE_DIR, 'schemas', 'shop.customers.avsc') } } : {}),
          }) as never,
      ),
      extra: {
        batch: { maxRows: 50, maxWaitMs: 50 },
        log: { level: 'warn' },
        canary: { sourceTable: `${schema}.trustsync_canary`, table: `${database}.trustsync_canary` },
      },
    });
    writeFileSync(flowFile, stringify(doc));
  });

  afterAll(async () => {
    await capture?.stop();
    const kafkaAdmin = kafkaClient().admin();
    await kafkaAdmin.connect();
    await kafkaAdmin.deleteTopics({ topics: [`state.${database}.customers`] }).catch(() => undefined);
    await kafkaAdmin.disconnect();
    await admin?.query(`DROP TRIGGER IF EXISTS trustsync.${database}_moves`);
    await admin?.query(`DROP DATABASE IF EXISTS ${database}`);
    for (const t of ['key_positions', 'history', 'entity_snapshots']) await admin?.query(`DELETE FROM trustsync.${t} WHERE target LIKE ?`, [`${database}.%`]);
    await admin?.end();
    await source?.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await source?.end();
  });

  it('ends equal to the source, value for value, with no position applied out of order and history matching the data', async () => {
    await killMidStream(schema, 5, () => spawnRun(flowFile, logFile), ledgerMoves);

    const last = spawnRun(flowFile, logFile);
    await waitForCrossConvergence(
      source,
      admin,
      tables.map((t) => ({ source: `${schema}.${t}`, destination: `${database}.${t}`, columns: columns[t]! })),
      120_000,
    );
    const exit = exited(last);
    last.kill('SIGTERM');
    expect(await exit).toEqual({ code: 0, signal: null });

    const [moves] = await admin.query(`SELECT count(*) AS moves, sum(new_position <= old_position) AS backwards FROM ${database}.ledger_moves`);
    expect(Number(moves.moves)).toBeGreaterThan(0);
    expect(Number(moves.backwards)).toBe(0);
    // For every key, the position the ledger holds is the newest the history says was applied.
    const mismatched = await admin.query(
      `SELECT kp.\`key\`, CAST(kp.position AS CHAR) AS ledger,
              (SELECT CAST(max(h.position) AS CHAR) FROM trustsync.history h WHERE h.target = kp.target AND h.key_hash = kp.key_hash AND h.decision = 'applied') AS history
         FROM trustsync.key_positions kp WHERE kp.target LIKE ? HAVING NOT (history <=> ledger)`,
      [`${database}.%`],
    );
    expect(mismatched).toEqual([]);
    // The state topic, as an analyst reads it, holds every customer the source holds, as it is now.
    const state = await readStateTopic(kafkaClient(), `state.${database}.customers`, schema);
    const { rows: current } = await source.query<{ id: string; email: string; micros: string }>(
      `SELECT id::text AS id, email, (extract(epoch FROM updated_at) * 1000000)::bigint::text AS micros FROM ${schema}.customers`,
    );
    const published = [...state.latest].filter(([, v]) => v !== null);
    expect(published.length).toBe(current.length);
    for (const c of current) expect(state.latest.get(c.id)).toMatchObject({ email: c.email, updated_at: Number(c.micros) });
    // The tables were made from the source's shape: instants as DATETIME(6), JSON as JSON.
    const types: { name: string; type: string }[] = await admin.query(
      `SELECT COLUMN_NAME AS name, COLUMN_TYPE AS type FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'customers' AND COLUMN_NAME IN ('id', 'updated_at', 'profile')`,
      [database],
    );
    expect(Object.fromEntries(types.map((t) => [t.name, t.type]))).toEqual({ id: 'bigint(20)', updated_at: 'datetime(6)', profile: 'longtext' });
  });

  it('explain tells a record’s story from the MariaDB destination', async () => {
    const out = await trustsync(['explain', '--config', flowFile, `${database}.customers`, '1']);
    expect(out.stderr).toBe('');
    expect(out.status).toBe(0);
    expect(out.stdout).toMatch(new RegExp(`${database}\\.customers key 1`));
    expect(out.stdout).toMatch(/applied/);
    expect(out.stdout).toMatch(/now: (present|deleted)/);
  });

  it('canaries written at the PostgreSQL source arrive whole in MariaDB, timed, and the run is on record there', async () => {
    const run = spawnRun(flowFile, logFile);
    try {
      const r = await runCanary(validateFlow(parse(readFileSync(flowFile, 'utf8')), flowFile), 3, 90_000);
      expect(r).toMatchObject({ sent: 3, arrived: 3, intact: 3, missing: [], damaged: [] });
      for (const l of r.latencies) expect(l).toBeGreaterThan(0);
      // Read back as MariaDB holds them, not as the canary saw them.
      const rows: { label: string; amount: string; tags: string }[] = await admin.query(
        `SELECT label, CAST(amount AS CHAR) AS amount, CAST(tags AS CHAR) AS tags FROM ${database}.trustsync_canary ORDER BY sent_at DESC LIMIT 3`,
      );
      for (const row of rows) {
        expect(row.label).toMatch(/^canary \d of 3 — ✓ ünïcode$/);
        expect(row.amount).toMatch(/^\d+\.\d\d$/);
        expect(JSON.parse(row.tags)[0]).toBe('canary');
      }
      const [note] = await admin.query(`SELECT reason FROM trustsync.history WHERE target = ? AND decision = 'canary' ORDER BY decided_at DESC LIMIT 1`, [
        `${database}.trustsync_canary`,
      ]);
      expect(note.reason).toMatch(/^3\/3 canaries arrived, 3 intact; latency p50 [\d.]+ s/);
    } finally {
      const exit = exited(run);
      run.kill('SIGTERM');
      expect(await exit).toEqual({ code: 0, signal: null });
    }
  });

  it('reconcile compares PostgreSQL with MariaDB in canonical text: clean, then exactly the injected drift', async () => {
    const reconcile = async () => {
      const r = await trustsync(['reconcile', '--config', flowFile, '--json', '--settle', '0']);
      expect(r.stderr).toBe('');
      return {
        status: r.status,
        report: JSON.parse(r.stdout) as { tables: { destination: string; mismatchedBuckets: number; differences: Record<string, unknown>[] }[] },
      };
    };
    // Equal after the flow: instants, JSON, numeric text and large text compare alike across the two engines.
    const clean = await reconcile();
    expect(clean.report.tables.map((t) => t.differences)).toEqual([[], [], []]);
    // Digested alike in both databases: not one bucket differs, so no row had to be read.
    expect(clean.report.tables.map((t) => t.mismatchedBuckets)).toEqual([0, 0, 0]);
    expect(clean.status).toBe(0);

    const ids: string[] = (await admin.query(`SELECT CAST(id AS CHAR) AS id FROM ${database}.customers ORDER BY id LIMIT 4`)).map((r: { id: string }) => r.id);
    const [gone, edited, moved, blanked] = ids as [string, string, string, string];
    await admin.query(`DELETE FROM ${database}.customers WHERE id = ?`, [gone]);
    await admin.query(`UPDATE ${database}.customers SET email = 'drift@example.com' WHERE id = ?`, [edited]);
    await admin.query(`UPDATE ${database}.customers SET updated_at = updated_at + INTERVAL 1 MICROSECOND WHERE id = ?`, [moved]);
    await admin.query(`UPDATE ${database}.customers SET notes = NULL WHERE id = ?`, [blanked]);
    const extra = await admin.query(`SELECT * FROM ${database}.customers WHERE id = ?`, [edited]);
    await admin.query(
      `INSERT INTO ${database}.customers (id, email, name, tier, balance, profile, notes, updated_at) SELECT 999999, email, name, tier, balance, profile, notes, updated_at FROM ${database}.customers WHERE id = ?`,
      [edited],
    );
    expect(extra).toHaveLength(1);

    const drift = await reconcile();
    expect(drift.status).toBe(1);
    const customers = drift.report.tables.find((t) => t.destination === `${database}.customers`)!;
    const told = customers.differences.map((d) => `${d.key} ${d.kind}${d.field ? ` ${d.field as string}` : ''} ${d.recommendedAction as string}`).sort();
    expect(told).toEqual(
      [
        `${gone} missing update-destination`,
        `${edited} field email update-destination`,
        `${moved} field updated_at update-destination`,
        `${blanked} field notes update-destination`,
        `999999 extra delete-destination`,
      ].sort(),
    );
    expect(customers.differences.find((d) => d.field === 'email')).toMatchObject({ destination: 'drift@example.com' });
    // Repair stays PostgreSQL's for now: refused with the way out, nothing written.
    const repair = await trustsync(['reconcile', '--config', flowFile, '--repair']);
    expect(repair.status).toBe(2);
    expect(repair.stderr).toMatch(/does not repair them yet/);
  });
});
