import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type pg from 'pg';
import pino from 'pino';
import { parse, stringify } from 'yaml';
import { seededRandom } from '../../src/demo/workload.js';
import { validateFlow } from '../../src/flow/config.js';
import { reconcileFlow } from '../../src/reconcile/reconcile.js';
import { waitForConvergence } from '../../src/demo/row-compare.js';
import { endpoints, kafkaClient, readRecords, type ReadRecord } from '../support/capture.js';
import { SyncFixture } from '../support/fixture.js';
import { trustsync } from '../support/cli.js';
import { flowDocument, spawnRun } from '../support/flow.js';
import { waitFor } from '../support/wait.js';

/**
 * Debezium's own records of a random workload — large TOASTed values, updates that leave them alone,
 * deletes and re-inserts, transactions of several statements and rolled-back ones — delivered again
 * into a fresh topic with every partition's order scrambled and records repeated, and trustsync
 * killed once mid-stream: every column of every row ends equal to the source.
 */
describe('real Debezium events, scrambled and repeated, with a kill -9 mid-stream', () => {
  const f = new SyncFixture('scramble');
  const { schema, destSchema } = f;
  const seed = Number(process.env.TRUSTSYNC_SCRAMBLE_SEED ?? 2207);
  const next = seededRandom(seed);
  const dir = mkdtempSync(join(tmpdir(), 'trustsync-scramble-'));
  const flowFile = join(dir, 'flow.yaml');
  const logFile = join(dir, 'run.log');
  const scrambled = `${schema}.scrambled`;
  let source: pg.Client;
  let dest: pg.Client;
  let captured: ReadRecord[] = [];

  /** A value PostgreSQL stores out of line (TOAST): several KB that pglz cannot shrink much. */
  const large = `(SELECT string_agg(md5(random()::text || g), '') FROM generate_series(1, 150) g)`;

  /** Runs the workload at the source; returns how many records Debezium writes for it. */
  async function workload(statements: number): Promise<number> {
    const live = new Set<number>();
    let records = 0;
    let nextId = 1;
    for (let done = 0; done < statements;) {
      const rollback = next() < 0.1;
      const tentative = new Set(live);
      let pending = 0;
      await source.query('BEGIN');
      for (let n = 1 + Math.floor(next() * 4); n > 0; n--, done++) {
        const ids = [...tentative];
        const pick = ids[Math.floor(next() * ids.length)];
        const roll = next();
        if (pick === undefined || roll < 0.2) {
          // Sometimes a deleted id again: a re-insert.
          const id = roll < 0.05 && nextId > 1 ? 1 + Math.floor(next() * (nextId - 1)) : nextId++;
          if (tentative.has(id)) continue;
          await source.query(`INSERT INTO ${schema}.docs (id, title, body) VALUES ($1, $2, ${large})`, [id, `t${done}`]);
          tentative.add(id);
          pending++;
        } else if (roll < 0.65) {
          // The body is left alone: Debezium sends its placeholder.
          await source.query(`UPDATE ${schema}.docs SET title = $2 WHERE id = $1`, [pick, `t${done}`]);
          pending++;
        } else if (roll < 0.85) {
          await source.query(`UPDATE ${schema}.docs SET title = $2, body = ${large} WHERE id = $1`, [pick, `t${done}`]);
          pending++;
        } else {
          await source.query(`DELETE FROM ${schema}.docs WHERE id = $1`, [pick]);
          tentative.delete(pick);
          pending += 2; // the delete and its tombstone
        }
      }
      await source.query(rollback ? 'ROLLBACK' : 'COMMIT');
      if (!rollback) {
        records += pending;
        live.clear();
        for (const id of tentative) live.add(id);
      }
    }
    return records;
  }

  beforeAll(async () => {
    ({ source, dest } = await f.open());
    await source.query(`CREATE SCHEMA ${schema}; CREATE TABLE ${schema}.docs (id bigint PRIMARY KEY, title text NOT NULL, body text)`);
    await dest.query(`CREATE SCHEMA ${destSchema}; CREATE TABLE ${destSchema}.docs (id bigint PRIMARY KEY, title text NOT NULL, body text)`);
    // Some rows before the capture starts: snapshot reads.
    await source.query(`INSERT INTO ${schema}.docs (id, title, body) SELECT s, 'snap', ${large} FROM generate_series(100001, 100010) s`);
    const capture = f.captureTables(['docs'], 'json');
    await capture.start();
    const expected = 10 + (await workload(320));
    captured = await readRecords(kafkaClient(), capture.topic('docs'), expected, 120_000);
    expect(captured.length).toBe(expected);

    // Every partition's records shuffled, a quarter of them repeated, into a topic of their own.
    const byPartition = new Map<number, ReadRecord[]>();
    for (const r of captured) {
      if (!byPartition.has(r.partition)) byPartition.set(r.partition, []);
      byPartition.get(r.partition)!.push(r);
    }
    const kafka = kafkaClient();
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic: scrambled, numPartitions: Math.max(...byPartition.keys()) + 1 }], waitForLeaders: true });
    await admin.disconnect();
    const producer = kafka.producer();
    await producer.connect();
    for (const [partition, records] of byPartition) {
      const delivered = [...records, ...records.filter(() => next() < 0.25)];
      for (let i = delivered.length - 1; i > 0; i--) {
        const j = Math.floor(next() * (i + 1));
        [delivered[i], delivered[j]] = [delivered[j]!, delivered[i]!];
      }
      await producer.send({ topic: scrambled, messages: delivered.map((r) => ({ partition, key: r.key, value: r.value })) });
    }
    await producer.disconnect();

    const doc = flowDocument({
      name: schema,
      topics: [{ topic: scrambled, table: `${destSchema}.docs` }],
      sourceDatabase: endpoints.postgresUrl('trustsync_source'),
      extra: { batch: { maxRows: 20, maxWaitMs: 50 }, log: { level: 'warn' } },
    });
    (doc.destination as { tables: Record<string, unknown>[] }).tables[0]!.sourceTable = `${schema}.docs`;
    writeFileSync(flowFile, stringify(doc));
  }, 300_000);

  afterAll(() => f.close());

  it('the captured stream exercises the TOAST case: updates that carry the placeholder, not the value', () => {
    const placeholders = captured.filter((r) => r.value?.toString().includes('__debezium_unavailable_value')).length;
    expect(placeholders).toBeGreaterThan(20);
  });

  it('ends with every column of every row equal to the source, and reconcile finds nothing', async () => {
    const exited = (child: ChildProcess) => new Promise<void>((r) => child.once('exit', () => r()));
    const first = spawnRun(flowFile, logFile);
    await waitFor(
      async () => (await dest.query(`SELECT count(*)::int AS n FROM trustsync.key_positions WHERE target = $1`, [`${destSchema}.docs`])).rows[0].n > 5,
      'the first run to write',
      60_000,
    );
    const gone = exited(first);
    first.kill('SIGKILL');
    await gone;

    const last = spawnRun(flowFile, logFile);
    try {
      await waitForConvergence(source, dest, [[`${schema}.docs`, `${destSchema}.docs`]], 120_000);
    } finally {
      const stopped = exited(last);
      last.kill('SIGTERM');
      await stopped;
    }
    const { rows } = await dest.query(
      `SELECT count(*)::int AS n, count(*) FILTER (WHERE body LIKE '%__debezium_unavailable_value%')::int AS placeholders FROM ${destSchema}.docs`,
    );
    expect(rows[0].n).toBeGreaterThan(10);
    expect(rows[0].placeholders).toBe(0);
    const report = await reconcileFlow(validateFlow(parse(readFileSync(flowFile, 'utf8')), flowFile), {
      buckets: 8,
      settleMs: 0,
      repair: false,
      progress: () => undefined,
      log: pino({ level: 'silent' }),
    });
    expect(report.tables.map((t) => [t.destination, t.differences.length])).toEqual([[`${destSchema}.docs`, 0]]);
    expect(report.clean).toBe(true);

    // The story of a record whose body an older change filled, as `trustsync explain` tells it.
    const { rows: filled } = await dest.query(`SELECT key FROM trustsync.history WHERE target = $1 AND decision = 'filled' LIMIT 1`, [`${destSchema}.docs`]);
    expect(filled).toHaveLength(1);
    const told = await trustsync(['explain', '--config', flowFile, `${destSchema}.docs`, filled[0].key]);
    expect(told.status).toBe(0);
    expect(told.stdout).toMatch(/filled +update|filled +insert/);
    expect(told.stdout).toContain('body left unchanged (TOAST) by the change at');
    expect(told.stdout).toContain('"body":"unchanged (TOAST)"');
    expect(told.stdout).not.toContain('__debezium_unavailable_value');
  }, 240_000);
});
