import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import pg from 'pg';
import { UNAVAILABLE_VALUE, type ChangeEvent } from '../../src/model/change.js';
import { collapseByKey } from '../../src/order/plan.js';
import { PostgresSink } from '../../src/sink/postgres/postgres-sink.js';
import type { TableMapping } from '../../src/model/table.js';
import { UNCHANGED_TOAST } from '../../src/history/explain.js';
import { explainKey } from '../../src/sink/postgres/explain-sql.js';
import { endpoints, uniqueName } from '../support/capture.js';
import { captureStatements, shuffledDeliveries, sourceStatement, type SourceRow } from '../support/source-model.js';

/**
 * Every column converges, TOASTed ones too: Debezium sends a large column an update left alone as a
 * placeholder, so its value lives only in an older change. Whatever order and repetition the changes
 * arrive in, the destination ends equal to the source — checked against an independent model of the
 * source (its rows after every statement), not against the sink applied in order.
 */
describe('unchanged TOAST columns converge under any delivery order', () => {
  const schema = uniqueName('toastconv');
  const table = 'docs';
  const target = `${schema}.${table}`;
  const flow = `${schema}-flow`;
  let pool: pg.Pool;
  let sink: PostgresSink;
  const mapping: TableMapping = { topic: table, table: { schema, table }, rename: {}, createIfMissing: false };

  beforeAll(async () => {
    pool = new pg.Pool({ connectionString: endpoints.postgresUrl('trustsync_dest'), max: 4 });
    sink = new PostgresSink(pool);
    await sink.prepare();
    await pool.query(`CREATE SCHEMA ${schema}`);
    await pool.query(`CREATE TABLE ${target} (id bigint PRIMARY KEY, v text, notes text)`);
  });

  afterAll(async () => {
    await pool.query(`DROP SCHEMA ${schema} CASCADE`);
    await pool.query(`DELETE FROM trustsync.key_positions WHERE target = $1`, [target]);
    await pool.query(`DELETE FROM trustsync.history WHERE target = $1`, [target]);
    await pool.end();
  });

  async function reset(): Promise<void> {
    await pool.query(`TRUNCATE ${target}`);
    await pool.query(`DELETE FROM trustsync.key_positions WHERE target = $1`, [target]);
    await pool.query(`DELETE FROM trustsync.history WHERE target = $1`, [target]);
  }

  /** As the flow does: collapse each batch per key, older changes passed along for the columns they carry. */
  async function deliver(events: readonly ChangeEvent[], batchSizes: readonly number[]): Promise<void> {
    let i = 0;
    for (let b = 0; i < events.length; b++) {
      const size = batchSizes[b % batchSizes.length]!;
      const plan = collapseByKey(events.slice(i, i + size));
      await sink.applyBatch(
        mapping,
        plan.latest,
        { flow, extra: [] },
        plan.superseded.map((s) => s.event),
      );
      i += size;
    }
  }

  async function destination(): Promise<Map<number, SourceRow>> {
    const { rows } = await pool.query<{ id: string; v: string; notes: string | null }>(`SELECT id::text, v, notes FROM ${target} ORDER BY id`);
    return new Map(rows.map((r) => [Number(r.id), { v: r.v, notes: r.notes }]));
  }

  it('any permutation with duplicates, in any batch split, leaves every column equal to the source', async () => {
    const scenario = shuffledDeliveries(table);
    await fc.assert(
      fc.asyncProperty(scenario, async ({ source, delivered, batchSizes }) => {
        await reset();
        await deliver(delivered, batchSizes);
        expect(await destination()).toEqual(source);
      }),
      { numRuns: 80 },
    );
  });

  it('in order, with old windows delivered again (a rebalance, a replay from an old offset), stays equal to the source', async () => {
    const scenario = fc.array(sourceStatement, { minLength: 2, maxLength: 30 }).chain((statements) => {
      const { events, source } = captureStatements(statements, table);
      return fc.record({
        source: fc.constant(source),
        events: fc.constant(events),
        // Each window: where it starts and how long it is; delivered again after the record at `after`.
        windows: fc.array(fc.record({ from: fc.nat(events.length), length: fc.integer({ min: 1, max: 8 }), after: fc.nat(events.length) }), {
          minLength: 1,
          maxLength: 4,
        }),
        batchSizes: fc.array(fc.integer({ min: 2, max: 10 }), { minLength: 1, maxLength: 20 }),
      });
    });
    await fc.assert(
      fc.asyncProperty(scenario, async ({ source, events, windows, batchSizes }) => {
        await reset();
        const stream: ChangeEvent[] = [];
        events.forEach((e, i) => {
          stream.push(e);
          for (const w of windows) if (w.after === i) stream.push(...events.slice(w.from, w.from + w.length));
        });
        await deliver(stream, batchSizes);
        expect(await destination()).toEqual(source);
      }),
      { numRuns: 100 },
    );
  });

  const change = (op: 'c' | 'u', lsn: bigint, notes: string | null, offset: number): ChangeEvent => ({
    kind: 'change',
    entity: 'src.docs',
    key: { id: 7 },
    keyText: '7',
    op,
    before: null,
    after: { id: 7, v: `at ${lsn}`, notes },
    position: { snapshot: false, commitLsn: lsn, lsn },
    txId: null,
    sourceTsMs: null,
    sourceTsUs: null,
    captureTsMs: null,
    fields: null,
    origin: { topic: table, partition: 0, offset: String(offset) },
  });

  it('a carried value never comes from before the change that set the stored one', async () => {
    await reset();
    const insert = change('c', 100n, 'first', 0);
    const edit = change('u', 200n, 'second', 1);
    const touch = change('u', 300n, UNAVAILABLE_VALUE, 2);
    await sink.applyBatch(mapping, [edit], { flow, extra: [] }, [insert]);
    // The insert delivered again, beside the newest change (a placeholder), in one batch.
    const plan = collapseByKey([insert, touch]);
    await sink.applyBatch(
      mapping,
      plan.latest,
      { flow, extra: [] },
      plan.superseded.map((s) => s.event),
    );
    expect(await destination()).toEqual(new Map([[7, { v: 'at 300', notes: 'second' }]]));
  });

  it('a late change fills the column, on record, and explain shows the placeholder as unchanged', async () => {
    await reset();
    const insert = change('c', 100n, 'the long text', 0);
    const touch = change('u', 300n, UNAVAILABLE_VALUE, 1);
    const first = await sink.applyBatch(mapping, [touch], { flow, extra: [] });
    expect(first.map((d) => d.decision)).toEqual(['applied']);
    expect(await destination()).toEqual(new Map([[7, { v: 'at 300', notes: null }]]));
    const late = await sink.applyBatch(mapping, [insert], { flow, extra: [] });
    expect(late.map((d) => d.decision)).toEqual(['skipped', 'filled']);
    expect(await destination()).toEqual(new Map([[7, { v: 'at 300', notes: 'the long text' }]]));
    // Delivered again, it fills nothing more.
    expect((await sink.applyBatch(mapping, [insert], { flow, extra: [] })).map((d) => d.decision)).toEqual(['skipped']);

    const story = await explainKey(pool, target, '7');
    const told = story.timeline;
    expect(told.map((t) => t.decision)).toContain('filled');
    const applied = told.find((t) => t.decision === 'applied')!;
    expect((applied.values as Record<string, unknown>).notes).toBe(UNCHANGED_TOAST);
    const filled = told.find((t) => t.decision === 'filled')!;
    expect(filled.values).toEqual({ notes: 'the long text' });
    expect(filled.reason).toMatch(/notes left unchanged \(TOAST\)/);
    expect(story.believed).toEqual({ id: 7, v: 'at 300', notes: 'the long text' });
  });
});
