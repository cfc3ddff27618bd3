import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import type { ChangeEvent, TruncateEvent } from '../../src/model/change.js';
import { PostgresSink } from '../../src/sink/postgres/postgres-sink.js';
import type { TableMapping } from '../../src/model/table.js';
import { explainKey } from '../../src/sink/postgres/explain-sql.js';
import { formatExplanation } from '../../src/history/explain.js';
import { endpoints, uniqueName } from '../support/capture.js';

/**
 * Entity snapshots: what trustsync believed a record to be survives its history's retention, and a
 * long history is not replayed from its beginning to answer explain (or explain --at).
 */
describe('entity snapshots of the decision history', () => {
  const schema = uniqueName('snap');
  const flow = `${schema}-flow`;
  let pool: pg.Pool;
  let sink: PostgresSink;
  const mapping: TableMapping = { topic: 't', table: { schema, table: 'items' }, rename: {}, createIfMissing: false };
  const target = `${schema}.items`;
  const change = (key: number, i: number, after: Record<string, unknown> | null): ChangeEvent => ({
    kind: 'change',
    entity: 'src.items',
    key: { id: key },
    keyText: String(key),
    op: after === null ? 'd' : i === 0 ? 'c' : 'u',
    before: null,
    after,
    position: { snapshot: false, commitLsn: BigInt(1000 + i), lsn: BigInt(1000 + i) },
    txId: null,
    sourceTsMs: null,
    sourceTsUs: null,
    captureTsMs: null,
    fields: null,
    origin: { topic: 't', partition: 0, offset: String(i) },
  });

  beforeAll(async () => {
    pool = new pg.Pool({ connectionString: endpoints.postgresUrl('trustsync_dest'), max: 4 });
    sink = new PostgresSink(pool);
    await sink.prepare();
    await pool.query(`CREATE SCHEMA ${schema}; CREATE TABLE ${schema}.items (id bigint PRIMARY KEY, name text, qty integer)`);
    // Key 1: a long story of 250 changes; key 2: created, then deleted.
    for (let i = 0; i < 250; i++)
      await sink.applyBatch(mapping, [change(1, i, i === 0 ? { id: 1, name: 'first', qty: 0 } : { id: 1, qty: i })], { flow, extra: [] });
    await sink.applyBatch(mapping, [change(2, 300, { id: 2, name: 'gone soon', qty: 1 })], { flow, extra: [] });
    await sink.applyBatch(mapping, [change(2, 301, null)], { flow, extra: [] });
  });

  afterAll(async () => {
    await pool.query(`DROP SCHEMA ${schema} CASCADE`);
    for (const t of ['history', 'entity_snapshots', 'key_positions', 'truncations']) await pool.query(`DELETE FROM trustsync.${t} WHERE target = $1`, [target]);
    await pool.end();
  });

  it('snapshots a record whose history grew long, and explain starts from it', async () => {
    expect(await sink.snapshotLongHistories(flow, 200)).toBe(1);
    const x = await explainKey(pool, target, '1');
    expect(x.snapshotAt).not.toBeNull();
    expect(x.believed).toEqual({ id: 1, name: 'first', qty: 249 });
    // Only the latest decisions are shown unless all are asked for.
    expect(x.timeline).toHaveLength(50);
    expect(x.earlier).toBe(200);
    expect(formatExplanation(x)).toContain('(200 earlier decisions not shown: --all shows them)');
    expect((await explainKey(pool, target, '1', { all: true })).timeline).toHaveLength(250);
  });

  it('keeps what was believed when the history passes its retention', async () => {
    const purged = await sink.purgeHistory(flow, 0);
    expect(purged).toBe(252);
    const one = await explainKey(pool, target, '1');
    expect(one.timeline).toEqual([]);
    expect(one.believed).toEqual({ id: 1, name: 'first', qty: 249 });
    const two = await explainKey(pool, target, '2');
    expect(two.believed).toBeNull();
    expect(formatExplanation(one)).toMatch(/believed: .*"qty":249.*\(from the snapshot of /);
  });

  it("tells a TRUNCATE of the table in each record's story, and keeps its effect past the retention", async () => {
    const truncate: TruncateEvent = {
      kind: 'truncate',
      entity: 'src.items',
      position: { snapshot: false, commitLsn: 2000n, lsn: 2000n },
      origin: { topic: 't', partition: 0, offset: '2000' },
    };
    await sink.applyTruncate(mapping, truncate, false, { flow });
    const told = await explainKey(pool, target, '1');
    expect(told.timeline.map((t) => `${t.decision} ${t.op}`)).toEqual(['truncated t']);
    expect(told.believed).toBeNull();
    expect(formatExplanation(told)).toMatch(/truncated +truncate at /);
    // Past the retention the TRUNCATE's own record goes; the records' snapshots hold what it did.
    await sink.purgeHistory(flow, 0);
    for (const key of ['1', '2']) {
      const after = await explainKey(pool, target, key);
      expect([after.timeline, after.believed]).toEqual([[], null]);
    }
  });
});
