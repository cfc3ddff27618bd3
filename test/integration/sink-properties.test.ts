import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import pg from 'pg';
import type { ChangeEvent, TruncateEvent } from '../../src/model/change.js';
import { collapseByKey } from '../../src/order/plan.js';
import { positionRank } from '../../src/order/position.js';
import { inTransaction, PostgresSink, recordHistory } from '../../src/sink/postgres/postgres-sink.js';
import type { TableMapping } from '../../src/model/table.js';
import { eventRow } from '../../src/history/history.js';
import { truncationLock } from '../../src/sink/postgres/sql.js';
import { endpoints, uniqueName } from '../support/capture.js';

/**
 * Invariants 1 and 2 against the real sink: for any list of changes to a few keys, and TRUNCATEs
 * among them, any permutation with duplicates, applied in any batch split, leaves the destination
 * exactly as applying each change once in position order does.
 */
describe('the guarded sink is order- and repetition-proof', () => {
  const schema = uniqueName('sinkprop');
  let pool: pg.Pool;
  let sink: PostgresSink;
  const mapping = (table: string): TableMapping => ({ topic: table, table: { schema, table }, rename: {}, createIfMissing: false });

  beforeAll(async () => {
    pool = new pg.Pool({ connectionString: endpoints.postgresUrl('trustsync_dest'), max: 4 });
    sink = new PostgresSink(pool);
    await sink.prepare();
    await pool.query(`CREATE SCHEMA ${schema}`);
    for (const t of ['in_order', 'shuffled']) await pool.query(`CREATE TABLE ${schema}.${t} (id bigint PRIMARY KEY, v text NOT NULL, n numeric)`);
  });

  afterAll(async () => {
    await pool.query(`DROP SCHEMA ${schema} CASCADE`);
    for (const ledger of ['key_positions', 'truncations']) await pool.query(`DELETE FROM trustsync.${ledger} WHERE target LIKE $1`, [`${schema}.%`]);
    await pool.end();
  });

  interface Spec {
    key: number;
    op: 'c' | 'u' | 'd' | 'r';
    v: string;
  }

  const event = (s: Spec, lsn: number, offset: number): ChangeEvent => ({
    kind: 'change',
    entity: 'src.t',
    key: { id: s.key },
    keyText: String(s.key),
    op: s.op,
    before: null,
    after: s.op === 'd' ? null : { id: s.key, v: s.v, n: String(lsn) },
    position: s.op === 'r' ? { snapshot: true, commitLsn: 0n, lsn: BigInt(lsn) } : { snapshot: false, commitLsn: BigInt(lsn), lsn: BigInt(lsn) },
    txId: null,
    sourceTsMs: null,
    sourceTsUs: null,
    captureTsMs: null,
    fields: null,
    origin: { topic: 't', partition: 0, offset: String(offset) },
  });

  // A source history: every change has its own position; a snapshot reads each key at most once.
  const history = fc
    .array(fc.record({ key: fc.integer({ min: 1, max: 4 }), op: fc.constantFrom<Spec['op']>('c', 'u', 'd', 'r'), v: fc.string({ maxLength: 6 }) }), {
      minLength: 1,
      maxLength: 25,
    })
    .map((specs) => {
      const read = new Set<number>();
      return specs.filter((s) => s.op !== 'r' || (!read.has(s.key) && read.add(s.key))).map((s, i) => event(s, 100 + i * 10, i));
    });

  /** A TRUNCATE of the table: Debezium sends it with no key, on whichever partition. */
  interface Truncation {
    kind: 'truncate';
    lsn: bigint;
  }
  type Step = ChangeEvent | Truncation;
  const lsnOf = (s: Step) => (s.kind === 'truncate' ? s.lsn : s.position.lsn);
  const truncation = (lsn: bigint): TruncateEvent => ({
    kind: 'truncate',
    entity: 'src.t',
    position: { snapshot: false, commitLsn: lsn, lsn },
    origin: { topic: 't', partition: 0, offset: String(lsn) },
  });
  const rankOf = (t: TruncateEvent) => positionRank(t.position).toString();

  // Zero to two TRUNCATEs, each between two of the history's changes (changes are 10 apart).
  const steps = history.chain((events) =>
    fc
      .array(fc.integer({ min: 0, max: events.length }), { maxLength: 2 })
      .map((at): Step[] => [...events, ...at.map((i): Truncation => ({ kind: 'truncate', lsn: BigInt(95 + i * 10) }))]),
  );

  const deliveries = steps.chain((all) =>
    fc.record({
      steps: fc.constant(all),
      delivered: fc
        .tuple(fc.shuffledSubarray(all, { minLength: all.length, maxLength: all.length }), fc.array(fc.constantFrom(...all), { maxLength: 10 }))
        .chain(([once, dupes]) => fc.shuffledSubarray([...once, ...dupes], { minLength: once.length + dupes.length, maxLength: once.length + dupes.length })),
      batchSizes: fc.array(fc.integer({ min: 1, max: 8 }), { minLength: 1, maxLength: 40 }),
    }),
  );

  /** An empty table that trustsync never wrote: no ledger positions, no TRUNCATE on record. */
  async function reset(table: string): Promise<void> {
    await pool.query(`TRUNCATE ${schema}.${table}`);
    for (const ledger of ['key_positions', 'truncations']) await pool.query(`DELETE FROM trustsync.${ledger} WHERE target = $1`, [`${schema}.${table}`]);
  }

  const rows = async (table: string) => (await pool.query(`SELECT id::text, v, n::text FROM ${schema}.${table} ORDER BY id`)).rows;

  /** As the flow does: the changes before a TRUNCATE in the batch are written first, then the TRUNCATE. */
  async function applyDelivered(table: string, batch: readonly Step[]): Promise<void> {
    let changes: ChangeEvent[] = [];
    for (const s of [...batch, undefined]) {
      if (s?.kind === 'change') {
        changes.push(s);
        continue;
      }
      await sink.applyBatch(mapping(table), collapseByKey(changes).latest);
      changes = [];
      if (s) await sink.applyTruncate(mapping(table), truncation(s.lsn), false);
    }
  }

  it('any permutation with duplicates and TRUNCATEs, in any batch split, equals applying once in position order', async () => {
    await fc.assert(
      fc.asyncProperty(deliveries, async ({ steps, delivered, batchSizes }) => {
        for (const t of ['in_order', 'shuffled']) await reset(t);
        // Reference: each step once, one at a time, in source order (snapshot reads first, as Debezium sends them).
        const snapshotFirst = (s: Step) => (s.kind === 'change' && s.position.snapshot ? -1 : 1);
        const ordered = [...steps].sort((a, b) => snapshotFirst(a) - snapshotFirst(b) || Number(lsnOf(a) - lsnOf(b)));
        for (const s of ordered) await applyDelivered('in_order', [s]);
        // The same steps as Kafka might deliver them: shuffled across partitions, repeated, cut into arbitrary batches.
        let i = 0;
        for (let b = 0; i < delivered.length; b++) {
          const size = batchSizes[b % batchSizes.length]!;
          await applyDelivered('shuffled', delivered.slice(i, i + size));
          i += size;
        }
        expect(await rows('shuffled')).toEqual(await rows('in_order'));
      }),
      { numRuns: 60 },
    );
  });

  it('applying the same batch twice leaves the destination as applying it once', async () => {
    await fc.assert(
      fc.asyncProperty(history, async (events) => {
        await reset('shuffled');
        const batch = collapseByKey(events).latest;
        await sink.applyBatch(mapping('shuffled'), batch);
        const once = await rows('shuffled');
        const again = await sink.applyBatch(mapping('shuffled'), batch);
        expect(again.every((d) => d.decision === 'skipped' && d.reason === 'duplicate')).toBe(true);
        expect(await rows('shuffled')).toEqual(once);
      }),
      { numRuns: 20 },
    );
  });

  it('a change that loses to the ledger is told as stale or duplicate, with the position the destination holds', async () => {
    const m = mapping('shuffled');
    await reset('shuffled');
    const newer = event({ key: 5, op: 'u', v: 'newer' }, 50, 0);
    await sink.applyBatch(m, [newer]);
    const told = (decisions: Awaited<ReturnType<PostgresSink['applyBatch']>>) =>
      decisions.map((d) => (d.decision === 'skipped' ? [d.decision, d.reason, d.storedPosition] : [d.decision]));
    const held = positionRank(newer.position).toString();
    // A late older change of key 5 beside a key the ledger never saw; then the newer change again.
    expect(told(await sink.applyBatch(m, [event({ key: 5, op: 'u', v: 'older' }, 40, 1), event({ key: 6, op: 'c', v: 'new key' }, 41, 2)]))).toEqual([
      ['skipped', 'stale', held],
      ['applied'],
    ]);
    expect(told(await sink.applyBatch(m, [newer]))).toEqual([['skipped', 'duplicate', held]]);
    expect(await rows('shuffled')).toEqual([
      { id: '5', v: 'newer', n: '50' },
      { id: '6', v: 'new key', n: '41' },
    ]);
  });

  it('a write that starts while a TRUNCATE is being applied waits for it, then refuses what came before it', async () => {
    const m = mapping('shuffled');
    await reset('shuffled');
    const target = `${schema}.shuffled`;
    // A TRUNCATE at 500 in flight, its transaction open (as applyTruncate holds it).
    const truncating = await pool.connect();
    await truncating.query(`BEGIN; ${truncationLock(target, 'exclusive')}`);
    await truncating.query(`INSERT INTO trustsync.truncations (target, position) VALUES ($1, $2)`, [target, rankOf(truncation(500n))]);
    let settled = false;
    const write = sink
      .applyBatch(m, [event({ key: 8, op: 'c', v: 'before the truncate' }, 400, 0), event({ key: 9, op: 'c', v: 'after it' }, 600, 1)])
      .finally(() => (settled = true));
    await new Promise((r) => setTimeout(r, 500));
    expect(settled).toBe(false);
    await truncating.query('COMMIT');
    truncating.release();
    expect((await write).map((d) => (d.decision === 'skipped' ? [d.decision, d.reason, d.storedPosition] : [d.decision]))).toEqual([
      ['skipped', 'stale', rankOf(truncation(500n))],
      ['applied'],
    ]);
    expect((await rows('shuffled')).map((r) => r.id)).toEqual(['9']);
  });

  it('keeps tombstones for the retention, then purges them; live keys are never purged', async () => {
    const m = mapping('shuffled');
    await reset('shuffled');
    await sink.applyBatch(m, [event({ key: 1, op: 'c', v: 'a' }, 10, 0), event({ key: 2, op: 'c', v: 'b' }, 11, 1), event({ key: 3, op: 'c', v: 'c' }, 12, 2)]);
    await sink.applyBatch(m, [event({ key: 1, op: 'd', v: '' }, 20, 3), event({ key: 2, op: 'd', v: '' }, 21, 4)]);
    // Key 1's delete is old enough to go, key 2's is not; key 3 is alive.
    await pool.query(`UPDATE trustsync.key_positions SET deleted_at = now() - interval '8 days' WHERE target = $1 AND key IN ('1', '3')`, [
      `${schema}.shuffled`,
    ]);
    expect(await sink.purgeTombstones(7 * 86_400_000)).toBeGreaterThanOrEqual(1);
    const { rows } = await pool.query(`SELECT key, deleted FROM trustsync.key_positions WHERE target = $1 ORDER BY key`, [`${schema}.shuffled`]);
    expect(rows).toEqual([
      { key: '2', deleted: true },
      { key: '3', deleted: false },
    ]);
    // Within the retention the tombstone still refuses a late update.
    const late = await sink.applyBatch(m, [event({ key: 2, op: 'u', v: 'late' }, 15, 5)]);
    expect(late.map((d) => d.decision)).toEqual(['skipped']);
  });

  it('a TRUNCATE delivered again, or one from before the TRUNCATE the table holds, is skipped and changes nothing', async () => {
    const m = mapping('shuffled');
    await reset('shuffled');
    await sink.applyBatch(m, [event({ key: 1, op: 'c', v: 'a' }, 100, 0), event({ key: 2, op: 'c', v: 'b' }, 110, 1)]);
    const told = async (t: TruncateEvent) => {
      const d = await sink.applyTruncate(m, t, true);
      return d.decision === 'skipped' ? [d.decision, d.reason, d.storedPosition, Object.fromEntries(d.removed)] : [d.decision, [...d.removed.keys()]];
    };
    expect(await told(truncation(300n))).toEqual(['truncated', ['1', '2']]);
    await sink.applyBatch(m, [event({ key: 7, op: 'c', v: 'after the truncate' }, 400, 2)]);
    // Delivered again (its first delivery perhaps interrupted before the keys it removed were told):
    // those keys again, known only by their text now.
    expect(await told(truncation(300n))).toEqual(['skipped', 'duplicate', rankOf(truncation(300n)), { '1': null, '2': null }]);
    expect(await told(truncation(200n))).toEqual(['skipped', 'stale', rankOf(truncation(300n)), {}]);
    expect((await rows('shuffled')).map((r) => r.id)).toEqual(['7']);
    // A later one still applies, keeping only what came after it.
    expect(await told(truncation(350n))).toEqual(['truncated', []]);
    expect(await told(truncation(500n))).toEqual(['truncated', ['7']]);
  });

  it('keeps a TRUNCATE as long as a tombstone, then no longer refuses a change from before it', async () => {
    const m = mapping('shuffled');
    await reset('shuffled');
    expect((await sink.applyTruncate(m, truncation(300n), false)).decision).toBe('truncated');
    const late = () => sink.applyBatch(m, [event({ key: 4, op: 'c', v: 'from before the truncate' }, 200, 0)]);
    expect((await late()).map((d) => d.decision)).toEqual(['skipped']);
    await pool.query(`UPDATE trustsync.truncations SET truncated_at = now() - interval '8 days' WHERE target = $1`, [`${schema}.shuffled`]);
    expect(await sink.purgeTombstones(7 * 86_400_000)).toBeGreaterThanOrEqual(1);
    expect((await late()).map((d) => d.decision)).toEqual(['applied']);
  });

  it("keeps a flow's history for its retention, and only its own", async () => {
    const m = mapping('shuffled');
    await sink.applyBatch(m, [event({ key: 9, op: 'c', v: 'h' }, 900, 9)], { flow: `${schema}-a`, extra: [] });
    await sink.applyBatch(m, [event({ key: 9, op: 'u', v: 'i' }, 901, 10)], { flow: `${schema}-b`, extra: [] });
    await pool.query(`UPDATE trustsync.history SET decided_at = now() - interval '100 days' WHERE flow LIKE $1`, [`${schema}-%`]);
    expect(await sink.purgeHistory(`${schema}-a`, 90 * 86_400_000)).toBe(1);
    const { rows } = await pool.query(`SELECT flow FROM trustsync.history WHERE flow LIKE $1`, [`${schema}-%`]);
    expect(rows).toEqual([{ flow: `${schema}-b` }]);
    await pool.query(`DELETE FROM trustsync.history WHERE flow LIKE $1`, [`${schema}-%`]);
  });
  it('a batch retried after its commit landed unacknowledged records each decision once', async () => {
    const m = mapping('shuffled');
    const flow = `${schema}-retry`;
    const older = event({ key: 7, op: 'c', v: 'first' }, 700, 70);
    const newer = event({ key: 7, op: 'u', v: 'second' }, 701, 71);
    const { latest, superseded } = collapseByKey([older, newer]);
    const audit = {
      flow,
      extra: superseded.map((x) => eventRow(`${schema}.shuffled`, x.event, 'superseded', 'a newer change of the key in this batch')),
      batchId: randomUUID(),
    };
    await sink.applyBatch(m, latest, audit);
    // The retry of a batch whose COMMIT was durable: the ledger makes its write a duplicate, and its mark its history.
    const retry = await sink.applyBatch(m, latest, audit);
    expect(retry.map((d) => d.decision)).toEqual(['skipped']);
    const told = async () =>
      (await pool.query(`SELECT decision, count(*)::int AS n FROM trustsync.history WHERE flow = $1 GROUP BY decision ORDER BY decision`, [flow])).rows;
    expect(await told()).toEqual([
      { decision: 'applied', n: 1 },
      { decision: 'superseded', n: 1 },
    ]);
    // The same change delivered again in another batch is a duplicate on record.
    await sink.applyBatch(m, latest, { flow, extra: [], batchId: randomUUID() });
    expect(await told()).toEqual([
      { decision: 'applied', n: 1 },
      { decision: 'skipped-duplicate', n: 1 },
      { decision: 'superseded', n: 1 },
    ]);
    await pool.query(`DELETE FROM trustsync.history WHERE flow = $1`, [flow]);
  });

  it('a transaction an earlier failure aborted is reported as not written, never as committed', async () => {
    // A statement's failure swallowed inside the transaction: PostgreSQL answers the COMMIT with ROLLBACK.
    const work = inTransaction(pool, 'a swallowed failure', async (client) => {
      await client.query(`INSERT INTO trustsync.history (flow, target, key, decision) VALUES ($1, 't', 'k', 'applied')`, [`${schema}-aborted`]);
      await client.query('SELECT 1/0').catch(() => undefined);
    });
    await expect(work).rejects.toMatchObject({ name: 'TransientSinkError', retriable: true, message: expect.stringMatching(/rolled back at COMMIT/) });
    const { rows } = await pool.query(`SELECT count(*)::int AS n FROM trustsync.history WHERE flow = $1`, [`${schema}-aborted`]);
    expect(rows[0].n).toBe(0);
  });

  it('runs its write transactions with JIT off, even where the session compiles everything', async () => {
    // JIT compiles each execution anew: a per-batch statement pays for it every time.
    const jitEverywhere = new pg.Pool({ connectionString: endpoints.postgresUrl('trustsync_dest'), max: 1, options: '-c jit=on -c jit_above_cost=0' });
    const jit = async (db: pg.Pool | pg.PoolClient) => (await db.query<{ jit: string }>('SHOW jit')).rows[0]!.jit;
    try {
      expect(await jit(jitEverywhere)).toBe('on');
      expect(await inTransaction(jitEverywhere, 'reading the JIT setting', jit)).toBe('off');
      expect(await jit(jitEverywhere)).toBe('on'); // only for the transaction: the session keeps its own
    } finally {
      await jitEverywhere.end();
    }
  });

  it('moves a ledger made before deleted_at to it: tombstones keep their time, the old index goes', async () => {
    const db = uniqueName('ledger_migration');
    await pool.query(`CREATE DATABASE ${db}`);
    const old = new pg.Pool({ connectionString: endpoints.postgresUrl(db), max: 2 });
    try {
      await old.query(`CREATE SCHEMA trustsync;
        CREATE TABLE trustsync.key_positions (target text NOT NULL, key text NOT NULL, position numeric(40,0) NOT NULL, deleted boolean NOT NULL, changed_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (target, key));
        CREATE INDEX key_positions_tombstones ON trustsync.key_positions (changed_at) WHERE deleted;
        INSERT INTO trustsync.key_positions VALUES ('t.a', '1', 10, true, now() - interval '8 days'), ('t.a', '2', 11, false, now() - interval '8 days')`);
      await new PostgresSink(old).prepare();
      const { rows } = await old.query(`SELECT key, deleted_at = changed_at AS kept FROM trustsync.key_positions ORDER BY key`);
      expect(rows).toEqual([
        { key: '1', kept: true },
        { key: '2', kept: null },
      ]);
      const indexes = await old.query(`SELECT indexname FROM pg_indexes WHERE tablename = 'key_positions' ORDER BY indexname`);
      expect(indexes.rows.map((r) => r.indexname)).toEqual(['key_positions_deleted', 'key_positions_pkey']);
      expect(await new PostgresSink(old).purgeTombstones(7 * 86_400_000)).toBe(1);
    } finally {
      await old.end();
      await pool.query(`DROP DATABASE ${db}`);
    }
  });

  it('records history text exactly, whatever characters it holds', async () => {
    const flow = `${schema}-text`;
    const reason = 'tab\there, newline\nthere, a backslash \\N and \\t, a return\r, a NUL \u0000 end';
    await recordHistory(pool, flow, [
      {
        target: `${schema}.t`,
        entity: 'src.t',
        key: 'k\t1',
        op: 'u',
        decision: 'applied',
        reason,
        position: '123456789012345678901234567890',
        storedPosition: null,
        origin: { topic: 'cdc.t', partition: 3, offset: '42' },
        txId: '77',
        sourceTsMs: 1795448591655.717,
        captureTsMs: 1795448592096,
        newValues: { id: 10n ** 18n, note: 'a\\b\tc\nd', nested: { list: [1, 'x'] } },
        correlationId: 'src.t/k@1',
      },
    ]);
    const { rows } = await pool.query(
      `SELECT key, reason, position::text, origin_partition, origin_offset::text, source_ts = '2026-11-23 15:43:11.655717+00' AS source_exact, extract(epoch FROM capture_ts) * 1000 AS capture_ms, new_values, correlation_id FROM trustsync.history WHERE flow = $1`,
      [flow],
    );
    expect(rows).toEqual([
      {
        key: 'k\t1',
        reason: reason.replace('\u0000', '\\0'),
        position: '123456789012345678901234567890',
        origin_partition: 3,
        origin_offset: '42',
        source_exact: true,
        capture_ms: '1795448592096.000000',
        new_values: { id: '1000000000000000000', note: 'a\\b\tc\nd', nested: { list: [1, 'x'] } },
        correlation_id: 'src.t/k@1',
      },
    ]);
    await pool.query(`DELETE FROM trustsync.history WHERE flow = $1`, [flow]);
  });

  it('records a batch larger than one COPY chunk, and a value larger than a chunk, whole', async () => {
    const flow = `${schema}-large`;
    const row = (i: number, note: string) => ({
      target: `${schema}.t`,
      entity: 'src.t',
      key: String(i),
      op: 'u',
      decision: 'applied' as const,
      reason: null,
      position: String(i),
      storedPosition: null,
      origin: null,
      txId: null,
      sourceTsMs: null,
      captureTsMs: null,
      newValues: { i, note },
      correlationId: null,
    });
    const rows = Array.from({ length: 3000 }, (_, i) => row(i, `ünïcödé ${i} `.repeat(60)));
    rows.splice(1500, 0, row(99_999, 'x'.repeat(3 * 1024 * 1024)));
    await recordHistory(pool, flow, rows);
    const { rows: got } = await pool.query(
      `SELECT count(*)::int AS n, sum(length(new_values->>'note'))::bigint::text AS chars, count(DISTINCT key)::int AS keys FROM trustsync.history WHERE flow = $1`,
      [flow],
    );
    expect(got).toEqual([{ n: 3001, chars: String(rows.reduce((n, r) => n + r.newValues.note.length, 0)), keys: 3001 }]);
    await pool.query(`DELETE FROM trustsync.history WHERE flow = $1`, [flow]);
  });
});
