import type { Pool, PoolConnection } from 'mariadb';
import type { ChangeEvent, Row, TruncateEvent } from '../../model/change.js';
import { RowRejected, SchemaIncompatible, TrustsyncError } from '../../model/errors.js';
import { positionRank } from '../../order/position.js';
import { unchangedColumns } from '../../order/unchanged-columns.js';
import { applyIsolating, carriersByKey, planFill, refuseUnfollowable, TableShapes, upsertGroups, wantedColumns, type TableShape } from '../batch.js';
import type { HistoryRow } from '../../model/history-row.js';
import type { BatchAudit, RowDecision, TruncateDecision } from '../../model/decision.js';
import { mapRow, targetName, type TableMapping, type TableName } from '../../model/table.js';
import type { Explanation } from '../../history/explain.js';
import { decisionRow } from '../../history/history.js';
import type { CanonicalRows, Sink, SinkCapabilities } from '../sink.js';
import { classifyMariadbError, isRowDataMariadbError } from './mariadb-errors.js';
import { insertHistory, PURGE_BATCH_MARKS } from './history-sql.js';
import { explainKey, takeSnapshots } from './explain-sql.js';
import { migrate } from './migrate.js';
import { mariadbCanonicalRows } from './canonical-sql.js';
import {
  columnAccepts,
  columnTypeFor,
  columnTypeForValue,
  keyHash,
  keyMatch,
  LEDGER,
  LEDGER_LOCK,
  ledgerReadStatement,
  LEDGER_WRITE,
  qualified,
  quoteIdent,
  sqlValue,
  upsertStatement,
} from './sql.js';

/** Ledger, rows and history in one transaction; reconcile reads rows back. Field-level policies and TRUNCATE need PostgreSQL. */
export const MARIADB_CAPABILITIES: SinkCapabilities = {
  transactions: true,
  governance: false,
  fieldAuthority: false,
  truncate: false,
  reconcile: true,
  everyChange: false,
};

/** Keys per IN list (ledger reads, deletes, reads back): one round trip each, well inside max_allowed_packet. */
const ROWS_PER_STATEMENT = 500;

export type { TableShape } from '../batch.js';

function chunks<T>(items: readonly T[], size = ROWS_PER_STATEMENT): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** A table's columns and primary key, from information_schema; null when it does not exist. */
export async function readTableShape(db: Pool | PoolConnection, t: TableName): Promise<TableShape | null> {
  const columns: { name: string; type: string }[] = await db.query(
    'SELECT COLUMN_NAME AS name, COLUMN_TYPE AS type FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION',
    [t.schema, t.table],
  );
  if (columns.length === 0) return null;
  const keys: { name: string }[] = await db.query(
    "SELECT COLUMN_NAME AS name FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX",
    [t.schema, t.table],
  );
  return { columns: new Map(columns.map((c) => [c.name, c.type])), keyColumns: keys.map((k) => k.name) };
}

/**
 * The destination: guarded, batched, idempotent writes into MariaDB tables, with a position ledger
 * (trustsync.key_positions) that every write of a key goes through, in the same transaction.
 */
export class MariadbSink implements Sink {
  readonly kind = 'mariadb';
  readonly capabilities: SinkCapabilities = MARIADB_CAPABILITIES;
  readonly canonical: CanonicalRows;
  /** MariaDB's canonical text is its own: the same rows for a MariaDB source as for any other. */
  get native(): CanonicalRows {
    return this.canonical;
  }
  private readonly shapes: TableShapes;
  private closed?: Promise<void>;

  constructor(readonly pool: Pool) {
    this.canonical = mariadbCanonicalRows(pool);
    this.shapes = new TableShapes((t) => readTableShape(pool, t));
  }

  async prepare(): Promise<void> {
    await migrate(this.pool);
  }

  async ping(): Promise<void> {
    await this.pool.query('SELECT 1').catch((err: unknown) => {
      throw classifyMariadbError(err, 'reaching the destination');
    });
  }

  close(): Promise<void> {
    this.closed ??= this.pool.end().catch(() => undefined);
    return this.closed;
  }

  /**
   * Runs `work` in one transaction on a pooled connection. Failures come out as trustsync's errors
   * (transient ones retriable); a connection whose rollback failed is closed, not pooled again.
   */
  async transaction<T>(what: string, work: (conn: PoolConnection) => Promise<T>): Promise<T> {
    const conn = await this.pool.getConnection().catch((err: unknown) => {
      throw classifyMariadbError(err, what);
    });
    let broken = false;
    try {
      await conn.beginTransaction();
      const result = await work(conn);
      await conn.commit();
      return result;
    } catch (err) {
      await conn.rollback().catch(() => (broken = true));
      throw classifyMariadbError(err, what);
    } finally {
      if (broken) conn.destroy();
      else await conn.release();
    }
  }

  recordDecisions(flow: string, rows: readonly HistoryRow[]): Promise<void> {
    if (rows.length === 0) return Promise.resolve();
    return this.transaction('writing decision history', (conn) => insertHistory(conn, flow, rows));
  }

  explain(target: string, key: string, options: { at?: Date; field?: string; all?: boolean } = {}): Promise<Explanation> {
    return explainKey(this.pool, target, key, options);
  }

  async purgeHistory(flow: string, retentionMs: number): Promise<number> {
    const cutoff = new Date(Date.now() - retentionMs);
    // What the purged decisions added up to is kept as snapshots: explain still knows each record.
    await takeSnapshots(this.pool, flow, { minRows: 1, upTo: cutoff });
    const res = await this.pool.query('DELETE FROM trustsync.history WHERE flow = ? AND decided_at < ?', [
      flow,
      cutoff.toISOString().replace('T', ' ').slice(0, 23),
    ]);
    await this.pool.query(PURGE_BATCH_MARKS);
    return Number(res.affectedRows);
  }

  snapshotLongHistories(flow: string, minRows = 200): Promise<number> {
    return takeSnapshots(this.pool, flow, { minRows });
  }

  async purgeTombstones(retentionMs: number): Promise<number> {
    const res = await this.pool.query(`DELETE FROM ${LEDGER} WHERE deleted AND position >= 0 AND deleted_at < now(6) - INTERVAL ? MICROSECOND`, [
      Math.round(retentionMs * 1000),
    ]);
    return Number(res.affectedRows);
  }

  columnsOf(t: TableName): Promise<string[] | undefined> {
    return this.shapes.columnsOf(t);
  }

  /**
   * Makes the destination able to hold these rows: creates the table from the source's shape when
   * allowed, adds columns the source added, and stops on a column it cannot follow.
   */
  async ensureTable(m: TableMapping, events: readonly ChangeEvent[]): Promise<TableShape> {
    const eventKeyColumns = Object.keys(mapRow(m, events[0]?.key ?? {}));
    const keyColumns = m.keyColumns ?? eventKeyColumns;
    const { wanted, sourceFields } = wantedColumns(m, events, (name, field, value) => {
      const keyWidth = keyColumns.includes(name) ? keyColumns.length : 0;
      return field ? columnTypeFor(field, keyWidth) : columnTypeForValue(value, keyWidth);
    });
    let shape = await this.shapes.get(m.table);
    if (!shape || [...wanted.keys()].some((name) => !shape!.columns.has(name))) shape = await this.followSource(m, wanted, keyColumns);
    refuseUnfollowable(m, shape, sourceFields, {
      accepts: columnAccepts,
      typeFor: (f) => columnTypeFor(f),
      addPrimaryKey: `ALTER TABLE ${qualified(m.table)} ADD PRIMARY KEY (${eventKeyColumns.map(quoteIdent).join(', ')})`,
    });
    return shape;
  }

  /** Creates the table or adds columns, under a named lock per table (MariaDB's DDL commits by itself). */
  private async followSource(m: TableMapping, wanted: Map<string, string>, keyColumns: string[]): Promise<TableShape> {
    const conn = await this.pool.getConnection();
    const lock = `trustsync:ddl:${targetName(m.table)}`.slice(0, 64);
    try {
      await conn.query('SELECT GET_LOCK(?, 60)', [lock]);
      const shape = await readTableShape(conn, m.table);
      if (!shape) {
        if (!m.createIfMissing) {
          throw new SchemaIncompatible(
            `destination table ${targetName(m.table)} does not exist.`,
            `create it, or set createIfMissing: true for topic ${m.topic} in the flow file.`,
          );
        }
        const columns = [...wanted].map(([name, type]) => `${quoteIdent(name)} ${type}${keyColumns.includes(name) ? ' NOT NULL' : ''}`);
        // utf8mb4 holds every character the source can; _bin compares text as the source does, so keys
        // that differ only in case or accents stay two rows. Said on the table: the database's default may be latin1.
        await conn.query(`CREATE DATABASE IF NOT EXISTS ${quoteIdent(m.table.schema)} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`);
        await conn.query(
          `CREATE TABLE ${qualified(m.table)} (${columns.join(', ')}, PRIMARY KEY (${keyColumns.map(quoteIdent).join(', ')})) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin`,
        );
      } else {
        const added = [...wanted].filter(([name]) => !shape.columns.has(name));
        if (added.length)
          await conn.query(
            `ALTER TABLE ${qualified(m.table)} ${added.map(([name, type]) => `ADD COLUMN IF NOT EXISTS ${quoteIdent(name)} ${type}`).join(', ')}`,
          );
      }
    } finally {
      await conn.query('SELECT RELEASE_LOCK(?)', [lock]).catch(() => undefined);
      await conn.release();
    }
    return (await this.shapes.get(m.table, true))!;
  }

  /**
   * Writes the newest change per key (already collapsed) in one transaction: claim positions in the
   * ledger, then one bulk statement per kind of row. A row the server rejects is isolated by
   * splitting the batch under savepoints; it is reported as rejected and everything else still applies.
   */
  async applyBatch(m: TableMapping, latest: readonly ChangeEvent[], audit?: BatchAudit, superseded: readonly ChangeEvent[] = []): Promise<RowDecision[]> {
    if (latest.length === 0 && !audit?.extra.length) return [];
    let shape: TableShape | undefined;
    try {
      shape = latest.length ? await this.ensureTable(m, latest) : undefined;
    } catch (err) {
      throw classifyMariadbError(err, `preparing to write ${targetName(m.table)}`);
    }
    const target = targetName(m.table);
    return this.transaction(`writing ${latest.length} rows to ${target}`, async (conn) => {
      const decisions = shape ? await this.applyIsolating(conn, m, shape, [...latest], superseded) : [];
      if (audit) await insertHistory(conn, audit.flow, [...audit.extra, ...decisions.map((d) => decisionRow(target, d))], audit.batchId);
      return decisions;
    });
  }

  private applyIsolating(
    conn: PoolConnection,
    m: TableMapping,
    shape: TableShape,
    set: ChangeEvent[],
    superseded: readonly ChangeEvent[],
  ): Promise<RowDecision[]> {
    return applyIsolating(set, (part) => this.applySet(conn, m, shape, part, superseded), {
      mark: () => conn.query('SAVEPOINT trustsync_rows'),
      release: () => conn.query('RELEASE SAVEPOINT trustsync_rows'),
      rollBack: () => conn.query('ROLLBACK TO SAVEPOINT trustsync_rows'),
      isRowError: isRowDataMariadbError,
      rejected: (err, e) => classifyMariadbError(err, `${targetName(m.table)} key ${e.keyText}`) as RowRejected,
    });
  }

  /**
   * Claims each key for its incoming position: every key's ledger row is made to exist and locked
   * (LEDGER_LOCK), read, and moved forward only where the incoming position is newer. A
   * winner that leaves columns unchanged (TOAST) keeps, per column, the position that set its
   * stored value: the one held before, else the key's previous position, else -1 (never set).
   */
  private async claim(conn: PoolConnection, target: string, set: readonly ChangeEvent[], unchanged: readonly (string[] | null)[]) {
    const hashes = set.map((e) => keyHash(e.keyText));
    const order = set.map((_, i) => i).sort((a, b) => Buffer.compare(hashes[a]!, hashes[b]!));
    const held = new Map<string, { position: string; columns: Record<string, string> | null }>();
    // MariaDB's bulk protocol: one statement, the rows as binary parameters, no text escaping.
    if (order.length)
      await conn.batch(
        LEDGER_LOCK,
        order.map((i) => [target, hashes[i], set[i]!.keyText]),
      );
    for (const part of chunks(order)) {
      const rows: { key_hash: Buffer; position: string; column_positions: string | null }[] = await conn.query(ledgerReadStatement(part.length), [
        target,
        ...part.map((i) => hashes[i]),
      ]);
      for (const r of rows) held.set(r.key_hash.toString('hex'), { position: r.position, columns: r.column_positions ? JSON.parse(r.column_positions) : null });
    }
    const outcome = set.map((e, i) => {
      const rank = positionRank(e.position).toString();
      const prior = held.get(hashes[i]!.toString('hex'))!;
      const won = BigInt(rank) > BigInt(prior.position);
      const columns = unchanged[i];
      const columnPositions = won && columns ? Object.fromEntries(columns.map((c) => [c, prior.columns?.[c] ?? prior.position])) : null;
      return { rank, won, prior: prior.position, columnPositions };
    });
    const winners = order.filter((i) => outcome[i]!.won);
    if (winners.length)
      await conn.batch(
        LEDGER_WRITE,
        winners.map((i) => {
          const deleted = set[i]!.op === 'd';
          const cp = outcome[i]!.columnPositions;
          return [target, hashes[i], set[i]!.keyText, outcome[i]!.rank, deleted, deleted, cp ? JSON.stringify(cp) : null];
        }),
      );
    return outcome;
  }

  private async applySet(
    conn: PoolConnection,
    m: TableMapping,
    shape: TableShape,
    set: ChangeEvent[],
    superseded: readonly ChangeEvent[],
  ): Promise<RowDecision[]> {
    const has = (c: string) => shape.columns.has(c);
    const typeOf = (c: string) => shape.columns.get(c)!;
    const mapped = set.map((e) => (e.after ? mapRow(m, e.after) : null));
    const unchanged = mapped.map((row) => {
      const columns = row ? unchangedColumns(row, has) : [];
      return columns.length ? columns : null;
    });
    const outcome = await this.claim(conn, targetName(m.table), set, unchanged);
    const decisions: RowDecision[] = [];
    const winners: number[] = [];
    set.forEach((e, i) => {
      const r = outcome[i]!;
      if (r.won) winners.push(i);
      else decisions.push({ decision: 'skipped', reason: r.prior === r.rank ? 'duplicate' : 'stale', event: e, storedPosition: r.prior });
    });

    const deletes = winners.filter((i) => set[i]!.op === 'd');
    for (const part of chunks(deletes)) {
      await conn.query(
        `DELETE FROM ${qualified(m.table)} WHERE ${keyMatch(shape.keyColumns, part.length)}`,
        part.flatMap((i) => {
          const key = mapRow(m, set[i]!.key);
          return shape.keyColumns.map((c) => sqlValue(key[c], undefined, typeOf(c)));
        }),
      );
    }

    const groups = upsertGroups(
      m,
      winners.filter((i) => set[i]!.op !== 'd').map((i) => ({ event: set[i]!, row: mapped[i]! })),
      has,
    );
    for (const g of groups)
      await conn.batch(
        upsertStatement(m.table, g.columns, shape.keyColumns, 1, g.onlyIfAbsent),
        g.rows.map(({ row, fields }) => g.columns.map((c) => sqlValue(row[c], fields[c], typeOf(c)))),
      );
    for (const i of winners) decisions.push({ decision: 'applied', event: set[i]! });
    // Only keys that may hold columns an older change has to fill: a winner left some unchanged, or a change lost.
    const open = new Set(set.filter((e, i) => unchanged[i] !== null || !outcome[i]!.won).map((e) => e.keyText));
    if (open.size)
      decisions.push(
        ...(await this.fillUnchanged(
          conn,
          m,
          shape,
          [...set, ...superseded].filter((e) => open.has(e.keyText)),
        )),
      );
    return decisions;
  }

  /**
   * Gives TOASTed columns that a newer row left unchanged the value of the newest change that carried
   * one, among these (late, superseded or stale), when it is newer than the change that set the
   * stored value (unchanged-columns.ts). The ledger's rows of these keys are locked by the claim.
   */
  private async fillUnchanged(conn: PoolConnection, m: TableMapping, shape: TableShape, candidates: readonly ChangeEvent[]): Promise<RowDecision[]> {
    const target = targetName(m.table);
    const byKey = carriersByKey(m, candidates);
    const keys = [...byKey.keys()];
    const byHash = new Map(keys.map((k) => [keyHash(k).toString('hex'), k]));
    const rows: { key_hash: Buffer; position: string; held: string }[] = await conn.query(
      `SELECT key_hash, CAST(position AS CHAR) AS position, column_positions AS held FROM ${LEDGER}
        WHERE target = ? AND key_hash IN (${keys.map(() => '?').join(', ')}) AND NOT deleted AND column_positions IS NOT NULL`,
      [target, ...keys.map(keyHash)],
    );
    const decisions: RowDecision[] = [];
    for (const r of rows) {
      const key = byHash.get(r.key_hash.toString('hex'))!;
      const fill = planFill(m, JSON.parse(r.held) as Record<string, string>, r.position, byKey.get(key) ?? []);
      if (!fill) continue;
      decisions.push(...fill.decisions);
      const columns = Object.keys(fill.values);
      const keyRow = mapRow(m, byKey.get(key)![0]!.event.key);
      await conn.query(`UPDATE ${qualified(m.table)} SET ${columns.map((c) => `${quoteIdent(c)} = ?`).join(', ')} WHERE ${keyMatch(shape.keyColumns, 1)}`, [
        ...columns.map((c) => sqlValue(fill.values[c], fill.fields[c], shape.columns.get(c)!)),
        ...shape.keyColumns.map((c) => sqlValue(keyRow[c], undefined, shape.columns.get(c)!)),
      ]);
      await conn.query(`UPDATE ${LEDGER} SET column_positions = ? WHERE target = ? AND key_hash = ?`, [JSON.stringify(fill.held), target, r.key_hash]);
    }
    return decisions;
  }

  /** The destination's current rows for these keys (columns as text), by key text; null for a key the table does not hold. */
  async readRows(m: TableMapping, keys: ReadonlyMap<string, Row | null>): Promise<Map<string, Record<string, string | null> | null>> {
    const out = new Map<string, Record<string, string | null> | null>([...keys.keys()].map((k) => [k, null]));
    const known = [...keys].filter((e): e is [string, Row] => e[1] !== null);
    const shape = known.length ? await this.shapes.get(m.table) : null;
    if (!shape) return out;
    const columns = [...shape.columns.keys()];
    const tupleOf = (values: readonly unknown[]) => JSON.stringify(values.map((v) => (v === null || v === undefined ? null : String(v))));
    const byTuple = new Map(
      known.map(([text, key]) => {
        const row = mapRow(m, key);
        return [tupleOf(shape.keyColumns.map((c) => sqlValue(row[c], undefined, shape.columns.get(c)!))), text];
      }),
    );
    try {
      for (const part of chunks(known)) {
        const rows: (string | null)[][] = await this.pool.query(
          {
            sql: `SELECT ${[...shape.keyColumns, ...columns].map((c) => `CAST(${quoteIdent(c)} AS CHAR)`).join(', ')} FROM ${qualified(m.table)} WHERE ${keyMatch(shape.keyColumns, part.length)}`,
            rowsAsArray: true,
          },
          part.flatMap(([, key]) => {
            const row = mapRow(m, key);
            return shape.keyColumns.map((c) => sqlValue(row[c], undefined, shape.columns.get(c)!));
          }),
        );
        for (const r of rows) {
          const text = byTuple.get(tupleOf(r.slice(0, shape.keyColumns.length)));
          if (text !== undefined) out.set(text, Object.fromEntries(columns.map((c, i) => [c, r[shape.keyColumns.length + i] ?? null])));
        }
      }
    } catch (err) {
      throw classifyMariadbError(err, `reading the state of ${targetName(m.table)}`);
    }
    return out;
  }

  applyTruncate(m: TableMapping, _t: TruncateEvent, _wantKeys: boolean, _audit?: Omit<BatchAudit, 'extra'>): Promise<TruncateDecision> {
    // The flow file is checked against the capabilities at start: a flow gets here only by a fault of trustsync's.
    return Promise.reject(
      new TrustsyncError('unsupported', `${targetName(m.table)}: a MariaDB destination does not apply TRUNCATE`, false, { family: 'internal' }),
    );
  }
}
