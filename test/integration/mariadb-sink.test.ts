import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import mariadb, { type Pool } from 'mariadb';
import { UNAVAILABLE_VALUE, type ChangeEvent, type FieldType } from '../../src/model/change.js';
import { collapseByKey } from '../../src/order/plan.js';
import { withRetries } from '../../src/flow/retry.js';
import { positionRank } from '../../src/order/position.js';
import type { TableMapping } from '../../src/model/table.js';
import { UNCHANGED_TOAST } from '../../src/history/explain.js';
import { openSink } from '../../src/sink/kinds.js';
import type { Sink } from '../../src/sink/sink.js';
import { endpoints, uniqueName } from '../support/capture.js';
import { shuffledDeliveries, type SourceRow } from '../support/source-model.js';

/**
 * The MariaDB destination keeps the guard's invariants, checked from outside: its tables against an
 * independent model of the source, whatever order, repetition and batching the changes come in.
 */
describe('a MariaDB destination', () => {
  const database = uniqueName('mdbsink');
  const flow = `${database}-flow`;
  const url = endpoints.mariadbUrl(database);
  let admin: Pool;
  let sink: Sink;
  const mapping = (table: string, extra: Partial<TableMapping> = {}): TableMapping => ({
    topic: table,
    table: { schema: database, table },
    rename: {},
    createIfMissing: false,
    ...extra,
  });

  beforeAll(async () => {
    admin = mariadb.createPool({ host: '127.0.0.1', port: Number(new URL(url).port), user: 'root', connectionLimit: 2, dateStrings: true });
    await admin.query(`CREATE DATABASE ${database}`);
    await admin.query(`CREATE TABLE ${database}.docs (id BIGINT PRIMARY KEY, v VARCHAR(64), notes LONGTEXT)`);
    sink = openSink(url, { name: flow, connections: 4 });
    await sink.prepare();
  });

  afterAll(async () => {
    await sink.close();
    await admin.query(`DROP DATABASE ${database}`);
    for (const t of ['key_positions', 'history', 'entity_snapshots']) await admin.query(`DELETE FROM trustsync.${t} WHERE target LIKE ?`, [`${database}.%`]);
    await admin.end();
  });

  async function reset(table = 'docs'): Promise<void> {
    await admin.query(`DELETE FROM ${database}.${table}`);
    for (const t of ['key_positions', 'history']) await admin.query(`DELETE FROM trustsync.${t} WHERE target = ?`, [`${database}.${table}`]);
  }

  async function destination(): Promise<Map<number, SourceRow>> {
    const rows: { id: string; v: string; notes: string | null }[] = await admin.query(
      `SELECT CAST(id AS CHAR) AS id, v, notes FROM ${database}.docs ORDER BY id`,
    );
    return new Map(rows.map((r) => [Number(r.id), { v: r.v, notes: r.notes }]));
  }

  /**
   * As the flow does: collapse each batch per key, older changes passed along for the columns they
   * carry, a batch the server chose as a deadlock victim written again.
   */
  async function deliver(events: readonly ChangeEvent[], batchSizes: readonly number[], into: Sink = sink): Promise<void> {
    let i = 0;
    for (let b = 0; i < events.length; b++) {
      const size = batchSizes[b % batchSizes.length]!;
      const plan = collapseByKey(events.slice(i, i + size));
      await withRetries(
        { maxAttempts: 20, initialDelayMs: 5, maxDelayMs: 50 },
        () =>
          into.applyBatch(
            mapping('docs'),
            plan.latest,
            { flow, extra: [] },
            plan.superseded.map((s) => s.event),
          ),
        () => undefined,
      );
      i += size;
    }
  }

  it('any permutation with duplicates, deletes and TOAST placeholders, in any batch split, leaves the source’s rows', async () => {
    await fc.assert(
      fc.asyncProperty(shuffledDeliveries('docs'), async ({ source, delivered, batchSizes }) => {
        await reset();
        await deliver(delivered, batchSizes);
        expect(await destination()).toEqual(source);
      }),
      { numRuns: 60 },
    );
  });

  it('two writers delivering the same changes at once still leave the source’s rows (the ledger’s row locks order them)', async () => {
    const other = openSink(url, { name: `${flow}-other`, connections: 2 });
    try {
      await fc.assert(
        fc.asyncProperty(shuffledDeliveries('docs'), fc.integer({ min: 1, max: 5 }), async ({ source, delivered, batchSizes }, size) => {
          await reset();
          // Both to the end, even when one fails: a writer left running would write into the next run.
          const writers = await Promise.allSettled([deliver(delivered, batchSizes), deliver([...delivered].reverse(), [size], other)]);
          for (const w of writers) if (w.status === 'rejected') throw w.reason;
          expect(await destination()).toEqual(source);
        }),
        { numRuns: 40 },
      );
    } finally {
      await other.close();
    }
  });

  const change = (
    id: number,
    op: 'c' | 'u' | 'd',
    lsn: bigint,
    after: Record<string, unknown> | null,
    fields: Record<string, FieldType> | null = null,
  ): ChangeEvent => ({
    kind: 'change',
    entity: 'src.t',
    key: { id },
    keyText: String(id),
    op,
    before: null,
    after,
    position: { snapshot: false, commitLsn: lsn, lsn },
    txId: String(lsn),
    sourceTsMs: 1_700_000_000_000,
    sourceTsUs: null,
    captureTsMs: null,
    fields,
    origin: { topic: 'docs', partition: 0, offset: String(lsn) },
  });

  it('a late change is refused as stale, a repeated one as duplicate, with the position the destination holds', async () => {
    await reset();
    const m = mapping('docs');
    await sink.applyBatch(m, [change(5, 'u', 50n, { id: 5, v: 'newer', notes: null })]);
    const told = (ds: Awaited<ReturnType<Sink['applyBatch']>>) => ds.map((d) => (d.decision === 'skipped' ? [d.reason, d.storedPosition] : [d.decision]));
    const held = positionRank(change(5, 'u', 50n, null).position).toString();
    expect(
      told(await sink.applyBatch(m, [change(5, 'u', 40n, { id: 5, v: 'older', notes: null }), change(6, 'c', 41n, { id: 6, v: 'new', notes: null })])),
    ).toEqual([['stale', held], ['applied']]);
    expect(told(await sink.applyBatch(m, [change(5, 'u', 50n, { id: 5, v: 'newer', notes: null })]))).toEqual([['duplicate', held]]);
    // A delete keeps its position as a tombstone: an insert from before it stays refused.
    await sink.applyBatch(m, [change(6, 'd', 60n, null)]);
    expect(told(await sink.applyBatch(m, [change(6, 'c', 55n, { id: 6, v: 'resurrected', notes: null })]))).toEqual([
      ['stale', positionRank(change(6, 'd', 60n, null).position).toString()],
    ]);
    expect(await destination()).toEqual(new Map([[5, { v: 'newer', notes: null }]]));
  });

  it('a batch retried after its commit landed unacknowledged tells each decision once; a later delivery is a duplicate on record', async () => {
    await reset();
    const m = mapping('docs');
    const batch = [change(7, 'c', 70n, { id: 7, v: 'once', notes: null })];
    const audit = { flow, extra: [], batchId: randomUUID() };
    await sink.applyBatch(m, batch, audit);
    expect((await sink.applyBatch(m, batch, audit)).map((d) => d.decision)).toEqual(['skipped']);
    const told = async () =>
      (
        (await admin.query('SELECT decision FROM trustsync.history WHERE flow = ? AND target = ? ORDER BY id', [flow, `${database}.docs`])) as {
          decision: string;
        }[]
      ).map((r) => r.decision);
    expect(await told()).toEqual(['applied']);
    await sink.applyBatch(m, batch, { flow, extra: [], batchId: randomUUID() });
    expect(await told()).toEqual(['applied', 'skipped-duplicate']);
  });

  it('rows the server refuses are isolated and reported while the rest of the batch applies', async () => {
    await reset();
    const m = mapping('docs');
    const decisions = await sink.applyBatch(
      m,
      [
        change(1, 'c', 10n, { id: 1, v: 'fine', notes: null }),
        change(2, 'c', 11n, { id: 2, v: 'x'.repeat(65), notes: null }), // longer than VARCHAR(64): strict mode refuses it
        change(3, 'c', 12n, { id: 3, v: 'also fine', notes: null }),
      ],
      { flow, extra: [] },
    );
    expect(decisions.map((d) => [d.event.keyText, d.decision])).toEqual(
      expect.arrayContaining([
        ['1', 'applied'],
        ['2', 'rejected'],
        ['3', 'applied'],
      ]),
    );
    const rejected = decisions.find((d) => d.decision === 'rejected');
    expect(rejected && rejected.decision === 'rejected' && rejected.error.message).toMatch(/Data too long|1406/);
    expect([...(await destination()).keys()]).toEqual([1, 3]);
    // The refused row claimed nothing: once fixed, the same position applies.
    expect((await sink.applyBatch(m, [change(2, 'c', 11n, { id: 2, v: 'short', notes: null })])).map((d) => d.decision)).toEqual(['applied']);
  });

  it('creates a table from the source’s shape with types that hold the values exactly, and follows an added column', async () => {
    const m = mapping('created', { createIfMissing: true });
    const fields: Record<string, FieldType> = {
      id: { type: 'int64', optional: false },
      amount: { type: 'string', optional: true },
      at: { type: 'string', name: 'io.debezium.time.ZonedTimestamp', optional: true },
      day: { type: 'int32', name: 'io.debezium.time.Date', optional: true },
      doc: { type: 'string', name: 'io.debezium.data.Json', optional: true },
      ok: { type: 'boolean', optional: true },
      blob: { type: 'bytes', optional: true },
    };
    const row = {
      id: 9007199254740993n,
      amount: '12345678901234567890.12',
      at: '2026-03-01T10:00:00.123456+02:00',
      day: 20_000,
      doc: '{"a": [1, 2]}',
      ok: true,
      blob: Buffer.from([0, 255, 7]),
    };
    const created = await sink.applyBatch(m, [{ ...change(1, 'c', 10n, row, fields), key: { id: row.id }, keyText: String(row.id) }]);
    expect(created.map((d) => d.decision)).toEqual(['applied']);
    const [stored] = await admin.query(
      `SELECT CAST(id AS CHAR) AS id, amount, CAST(at AS CHAR) AS at, CAST(day AS CHAR) AS day, CAST(doc AS CHAR) AS doc, ok, \`blob\` FROM ${database}.created`,
    );
    expect(stored).toEqual({
      id: '9007199254740993',
      amount: '12345678901234567890.12',
      at: '2026-03-01 08:00:00.123456',
      day: '2024-10-04',
      doc: '{"a": [1, 2]}',
      ok: 1,
      blob: Buffer.from([0, 255, 7]),
    });
    // The source adds a column: the destination gains it, and older rows keep theirs.
    const more = { ...fields, note: { type: 'string', optional: true } };
    await sink.applyBatch(m, [{ ...change(2, 'c', 20n, { ...row, id: 2n, note: 'added' }, more), key: { id: 2n }, keyText: '2' }]);
    expect(await sink.columnsOf(m.table)).toEqual(['id', 'amount', 'at', 'day', 'doc', 'ok', 'blob', 'note']);
    const rows: { id: string; note: string | null }[] = await admin.query(`SELECT CAST(id AS CHAR) AS id, note FROM ${database}.created ORDER BY id`);
    expect(rows).toEqual([
      { id: '2', note: 'added' },
      { id: '9007199254740993', note: null },
    ]);
  });

  it('a table it creates holds any text exactly and keeps keys that differ only in case or accents apart, whatever the database’s default charset', async () => {
    const latin1 = `${database}_latin1`;
    await admin.query(`CREATE DATABASE ${latin1} CHARACTER SET latin1`);
    try {
      const m: TableMapping = { topic: 'names', table: { schema: latin1, table: 'names' }, rename: {}, createIfMissing: true };
      const fields: Record<string, FieldType> = { code: { type: 'string', optional: false }, label: { type: 'string', optional: true } };
      const labels: Record<string, string> = { a: 'lower', A: 'upper', á: 'accent', '✓': '✓ ünïcode 漢字 😀' };
      const events = Object.entries(labels).map(([code, label], i) => ({
        ...change(i, 'c', BigInt(100 + i), { code, label }, fields),
        key: { code },
        keyText: JSON.stringify(code),
      }));
      const decisions = await sink.applyBatch(m, events, { flow, extra: [] });
      expect(decisions.map((d) => d.decision)).toEqual(['applied', 'applied', 'applied', 'applied']);
      const rows: { code: string; label: string }[] = await admin.query(`SELECT code, label FROM ${latin1}.names`);
      expect(Object.fromEntries(rows.map((r) => [r.code, r.label]))).toEqual(labels);
      // The decision history holds the same text (its values and keys), whatever charset trustsync's database was created with.
      const told: { key: string; new_values: string }[] = await admin.query(`SELECT \`key\`, new_values FROM trustsync.history WHERE target = ?`, [
        `${latin1}.names`,
      ]);
      expect(Object.fromEntries(told.map((h) => [JSON.parse(h.key), JSON.parse(h.new_values).label]))).toEqual(labels);
      const narrow: { t: string; c: string }[] = await admin.query(
        `SELECT TABLE_NAME AS t, COLUMN_NAME AS c FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'trustsync' AND TABLE_NAME <> 'migrations'
            AND CHARACTER_SET_NAME IS NOT NULL AND CHARACTER_SET_NAME <> 'utf8mb4'`,
      );
      expect(narrow).toEqual([]);
    } finally {
      await admin.query(`DROP DATABASE ${latin1}`);
      for (const t of ['key_positions', 'history']) await admin.query(`DELETE FROM trustsync.${t} WHERE target LIKE ?`, [`${latin1}.%`]);
    }
  });

  it('a table without a primary key is refused with the statement that fixes it', async () => {
    await admin.query(`CREATE TABLE ${database}.nokey (id BIGINT, v TEXT)`);
    await expect(sink.applyBatch(mapping('nokey'), [change(1, 'c', 10n, { id: 1, v: 'x' })])).rejects.toMatchObject({
      message: expect.stringMatching(/nokey has no primary key/),
      fix: expect.stringMatching(/ADD PRIMARY KEY \(`id`\)/),
    });
  });

  it('a late change fills a TOASTed column, on record, and explain tells the story', async () => {
    await reset();
    const m = mapping('docs');
    const insert = change(7, 'c', 100n, { id: 7, v: 'at 100', notes: 'the long text' });
    const touch = change(7, 'u', 300n, { id: 7, v: 'at 300', notes: UNAVAILABLE_VALUE });
    expect((await sink.applyBatch(m, [touch], { flow, extra: [] })).map((d) => d.decision)).toEqual(['applied']);
    expect((await sink.applyBatch(m, [insert], { flow, extra: [] })).map((d) => d.decision)).toEqual(['skipped', 'filled']);
    expect(await destination()).toEqual(new Map([[7, { v: 'at 300', notes: 'the long text' }]]));
    const story = await sink.explain(`${database}.docs`, '7');
    expect(story.timeline.map((t) => t.decision)).toEqual(['applied', 'skipped-stale', 'filled']);
    expect((story.timeline[0]!.values as Record<string, unknown>).notes).toBe(UNCHANGED_TOAST);
    expect(story.timeline[0]!.sourceTs).toBe(new Date(1_700_000_000_000).toISOString());
    expect(story.believed).toEqual({ id: 7, v: 'at 300', notes: 'the long text' });
    expect(story.ledger).toMatchObject({ position: positionRank(touch.position).toString(), deleted: false });
    // Snapshots keep the story once the history is purged.
    expect(await sink.purgeHistory(flow, 0)).toBe(3);
    expect((await sink.explain(`${database}.docs`, '7')).believed).toEqual({ id: 7, v: 'at 300', notes: 'the long text' });
  });

  it('reads rows back by key, as text, for reconcile and state topics', async () => {
    await reset();
    const m = mapping('docs');
    await sink.applyBatch(m, [change(1, 'c', 10n, { id: 1, v: 'one', notes: 'n' })]);
    const rows = await sink.readRows(
      m,
      new Map([
        ['1', { id: 1 }],
        ['2', { id: 2 }],
        ['3', null],
      ]),
    );
    expect(rows).toEqual(
      new Map([
        ['1', { id: '1', v: 'one', notes: 'n' }],
        ['2', null],
        ['3', null],
      ]),
    );
  });

  it('a wrong password is a configuration error naming destination.url', async () => {
    const wrong = openSink(url.replace('root@', 'nobody:wrong@'), { name: flow, connections: 1 });
    try {
      await expect(wrong.ping()).rejects.toMatchObject({ family: 'config', message: expect.stringMatching(/Access denied/) });
    } finally {
      await wrong.close();
    }
  });
});
