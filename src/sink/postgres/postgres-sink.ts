import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { keyTextOf, type ChangeEvent, type FieldType, type Row, type TruncateEvent } from '../../model/change.js';
import { RowRejected, SchemaIncompatible, TransientSinkError, TrustsyncError } from '../../model/errors.js';
import { positionRank } from '../../order/position.js';
import { unchangedColumns } from '../../order/unchanged-columns.js';
import { applyIsolating, carriersByKey, planFill, refuseUnfollowable, TableShapes, upsertGroups, wantedColumns, type TableShape } from '../batch.js';
import { classifyPgError, isRowDataPgError } from './pg-errors.js';
import { HISTORY_COPY, historyCopy, MARK_BATCH, PURGE_BATCH_MARKS } from './history-sql.js';
import { decisionRow, truncateRow } from '../../history/history.js';
import type { HistoryRow } from '../../model/history-row.js';
import type { BatchAudit, RowDecision, TruncateDecision } from '../../model/decision.js';
import { mapRow, targetName, type TableMapping, type TableName } from '../../model/table.js';
import { explainKey, takeSnapshots } from './explain-sql.js';
import { migrate } from './migrate.js';
import { postgresCanonicalRows, postgresNativeRows } from './canonical-sql.js';
import { GovernedSink } from './governed-sink.js';
import { postgresRepair } from './repair.js';
import type { Explanation } from '../../history/explain.js';
import type { CanonicalRows, RepairableSink, Sink, SinkCapabilities } from '../sink.js';
import type { GovernanceOptions, GovernedDestination } from '../governance.js';
import {
  CLAIM_POSITIONS,
  columnAccepts,
  columnTypeFor,
  columnTypeForValue,
  deleteStatement,
  fillStatement,
  HELD_COLUMN_POSITIONS,
  keyTextExpr,
  LEDGER_SCHEMA,
  qualified,
  quoteIdent,
  quoteLiteral,
  SET_COLUMN_POSITIONS,
  sqlText,
  truncationLock,
  upsertStatement,
} from './sql.js';

/** PostgreSQL can do all a sink does. */
export const POSTGRES_CAPABILITIES: SinkCapabilities = {
  transactions: true,
  governance: true,
  fieldAuthority: true,
  truncate: true,
  reconcile: true,
  everyChange: false,
};

export type { TableShape } from '../batch.js';

/** Columns with their destination types, as the set-based statements take them. */
function typedColumns(shape: TableShape, names: readonly string[]): { name: string; type: string }[] {
  return names.map((name) => ({ name, type: shape.columns.get(name)! }));
}

/**
 * Writes history rows with COPY: inside a batch's transaction, or in one of their own (records that
 * never reach a batch write). With `batchId`, none when an earlier attempt of the batch committed them.
 */
export async function recordHistory(db: pg.Pool | pg.PoolClient, flow: string, rows: readonly HistoryRow[], batchId?: string): Promise<void> {
  if (rows.length === 0) return;
  if (db instanceof pg.Pool) return inTransaction(db, 'writing decision history', (client) => recordHistory(client, flow, rows, batchId));
  try {
    if (batchId !== undefined && (await db.query(MARK_BATCH, [batchId, flow])).rowCount === 0) return;
    await copyIn(db, HISTORY_COPY, historyCopy(flow, rows));
  } catch (err) {
    throw err instanceof TrustsyncError ? err : classifyPgError(err, 'writing decision history');
  }
}

/** Sends `data` (COPY text) through a COPY … FROM STDIN statement. */
async function copyIn(client: pg.PoolClient, statement: string, data: Buffer[]): Promise<void> {
  await pipeline(Readable.from(data), client.query(copyFrom(statement)));
}

/**
 * Some keys' states (`query` selects key and state for target $1 and keys $2: LEDGER_STATES,
 * ROW_STATES); a key without one is absent. With `lock`, the rows are held until the transaction
 * ends, taken in key order.
 */
export async function keyStates(
  db: pg.Pool | pg.PoolClient,
  query: string,
  target: string,
  keys: readonly string[],
  lock = false,
): Promise<Map<string, string>> {
  if (keys.length === 0) return new Map();
  const { rows } = await db.query<{ key: string; state: string }>(`${query}${lock ? ' ORDER BY key FOR UPDATE' : ''}`, [target, keys]);
  return new Map(rows.map((r) => [r.key, r.state]));
}

/**
 * Runs `work` in one transaction on a pooled connection (`prelude`, SQL without parameters, runs in
 * BEGIN's round trip). Failures come out as trustsync's errors
 * (transient ones retriable), whether the connection, the work or the commit failed; a connection
 * whose rollback failed is discarded rather than returned to the pool.
 */
export async function inTransaction<T>(pool: pg.Pool, what: string, work: (client: pg.PoolClient) => Promise<T>, prelude?: string): Promise<T> {
  const classify = (err: unknown) => (err instanceof TrustsyncError ? err : classifyPgError(err, what));
  const client = await pool.connect().catch((err: unknown) => {
    throw classify(err);
  });
  let broken: Error | undefined;
  try {
    // JIT compiles a statement anew on every execution, and the estimate for a batch of unnested
    // arrays often crosses jit_above_cost: these short statements run faster interpreted.
    await client.query(`BEGIN; SET LOCAL jit = off${prelude ? `; ${prelude}` : ''}`);
    const result = await work(client);
    // PostgreSQL answers COMMIT of a transaction an earlier failure aborted with ROLLBACK, not an error.
    if ((await client.query('COMMIT')).command !== 'COMMIT')
      throw new TransientSinkError(`${what}: the transaction was rolled back at COMMIT (a statement in it failed); nothing of it was written`);
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch((e: Error) => (broken = e));
    throw classify(err);
  } finally {
    client.release(broken);
  }
}

/** A table's columns (name → type, in order) and primary key, from the catalog; null when it does not exist. */
export async function readTableShape(client: pg.Pool | pg.PoolClient, t: TableName): Promise<TableShape | null> {
  const { rows } = await client.query<{ name: string; type: string; key: boolean }>(
    `SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type,
            coalesce(a.attnum = ANY (i.indkey), false) AS key
       FROM pg_attribute a
       JOIN pg_class c ON c.oid = a.attrelid
       JOIN pg_namespace n ON n.oid = c.relnamespace
       LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary
      WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped
      ORDER BY a.attnum`,
    [t.schema, t.table],
  );
  if (rows.length === 0) return null;
  return { columns: new Map(rows.map((r) => [r.name, r.type])), keyColumns: rows.filter((r) => r.key).map((r) => r.name) };
}

/**
 * The destination: guarded, batched, idempotent writes into PostgreSQL tables, with a position
 * ledger (trustsync.key_positions) that every write of a key goes through, in the same transaction.
 */
export class PostgresSink implements Sink {
  readonly kind = 'postgres';
  readonly capabilities: SinkCapabilities = POSTGRES_CAPABILITIES;
  readonly canonical: CanonicalRows;
  readonly native: CanonicalRows;
  readonly repair: RepairableSink;
  private readonly shapes: TableShapes;
  private closed?: Promise<void>;

  constructor(readonly pool: pg.Pool) {
    // A connection the server drops while checked out emits 'error'; unheard, that would end the
    // process. The query in flight fails too, and that failure is what gets classified and retried.
    pool.on('connect', (client) => client.on('error', () => undefined));
    this.canonical = postgresCanonicalRows(pool);
    this.native = postgresNativeRows(pool);
    this.repair = postgresRepair(this);
    this.shapes = new TableShapes((t) => readTableShape(pool, t));
  }

  async prepare(): Promise<void> {
    await migrate(this.pool);
  }

  openGovernance(options: GovernanceOptions): GovernedDestination {
    return new GovernedSink(this, options);
  }

  async ping(): Promise<void> {
    await this.pool.query('SELECT 1');
  }

  recordDecisions(flow: string, rows: readonly HistoryRow[]): Promise<void> {
    return recordHistory(this.pool, flow, rows);
  }

  explain(target: string, key: string, options: { at?: Date; field?: string; all?: boolean } = {}): Promise<Explanation> {
    return explainKey(this.pool, target, key, options);
  }

  close(): Promise<void> {
    this.closed ??= this.pool.end().catch(() => undefined);
    return this.closed;
  }

  /** Removes a flow's history older than the retention (the history is otherwise append-only). */
  async purgeHistory(flow: string, retentionMs: number): Promise<number> {
    const cutoff = new Date(Date.now() - retentionMs);
    // What the purged decisions added up to is kept as snapshots: explain still knows each record.
    await takeSnapshots(this.pool, flow, { minRows: 1, upTo: cutoff });
    const res = await this.pool.query(`DELETE FROM trustsync.history WHERE flow = $1 AND decided_at < $2`, [flow, cutoff]);
    await this.pool.query(PURGE_BATCH_MARKS);
    return res.rowCount ?? 0;
  }

  /** Snapshots the belief of records whose history grew long since their last snapshot. */
  async snapshotLongHistories(flow: string, minRows = 200): Promise<number> {
    return takeSnapshots(this.pool, flow, { minRows });
  }

  /**
   * Removes tombstones older than the retention: after that, a change that late is no longer refused.
   * A TRUNCATE on record is the whole table's tombstone, and is kept as long.
   */
  async purgeTombstones(retentionMs: number): Promise<number> {
    const age = [retentionMs / 1000];
    const keys = await this.pool.query(`DELETE FROM ${LEDGER_SCHEMA}.key_positions WHERE deleted AND deleted_at < now() - make_interval(secs => $1)`, age);
    const tables = await this.pool.query(`DELETE FROM ${LEDGER_SCHEMA}.truncations WHERE truncated_at < now() - make_interval(secs => $1)`, age);
    return (keys.rowCount ?? 0) + (tables.rowCount ?? 0);
  }

  columnsOf(t: TableName): Promise<string[] | undefined> {
    return this.shapes.columnsOf(t);
  }

  /** Runs `work` in one transaction on the destination (see inTransaction). */
  transaction<T>(what: string, work: (client: pg.PoolClient) => Promise<T>, prelude?: string): Promise<T> {
    return inTransaction(this.pool, what, work, prelude);
  }

  /**
   * Makes the destination able to hold these rows: creates the table from the source's shape when
   * allowed, adds columns the source added, and stops on a column it cannot follow.
   */
  async ensureTable(m: TableMapping, events: readonly ChangeEvent[]): Promise<TableShape> {
    const { wanted, sourceFields } = wantedColumns(m, events, (_, field, value) => (field ? columnTypeFor(field) : columnTypeForValue(value)));
    const eventKeyColumns = Object.keys(mapRow(m, events[0]?.key ?? {}));
    let shape = await this.shapes.get(m.table);
    if (!shape || [...wanted.keys()].some((name) => !shape!.columns.has(name))) {
      shape = await this.followSource(m, wanted, eventKeyColumns);
    }
    refuseUnfollowable(m, shape, sourceFields, {
      accepts: columnAccepts,
      typeFor: (f) => columnTypeFor(f),
      addPrimaryKey: `ALTER TABLE ${qualified(m.table)} ADD PRIMARY KEY (${eventKeyColumns.map(quoteIdent).join(', ')})`,
    });
    return shape;
  }

  /**
   * Creates the table or adds columns, under a transaction-scoped advisory lock per table: partitions
   * (and processes) that meet a new column at once would otherwise race in PostgreSQL's catalog.
   */
  private async followSource(m: TableMapping, wanted: Map<string, string>, eventKeyColumns: string[]): Promise<TableShape> {
    await this.transaction(`following the source's shape in ${targetName(m.table)}`, async (client) => {
      await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`trustsync:ddl:${targetName(m.table)}`]);
      const shape = await readTableShape(client, m.table);
      if (!shape) {
        if (!m.createIfMissing) {
          throw new SchemaIncompatible(
            `destination table ${targetName(m.table)} does not exist.`,
            `create it, or set createIfMissing: true for topic ${m.topic} in the flow file.`,
          );
        }
        const keyColumns = m.keyColumns ?? eventKeyColumns;
        const columns = [...wanted].map(([name, type]) => `${quoteIdent(name)} ${type}`);
        await client.query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(m.table.schema)}`);
        await client.query(`CREATE TABLE ${qualified(m.table)} (${columns.join(', ')}, PRIMARY KEY (${keyColumns.map(quoteIdent).join(', ')}))`);
      } else {
        for (const [name, type] of wanted) {
          if (!shape.columns.has(name)) await client.query(`ALTER TABLE ${qualified(m.table)} ADD COLUMN ${quoteIdent(name)} ${type}`);
        }
      }
    });
    return (await this.shapes.get(m.table, true))!;
  }

  /**
   * Writes the newest change per key (already collapsed) in one transaction: claim positions in the
   * ledger, then one set-based statement per kind of row. A row the database rejects is isolated by
   * splitting the batch under savepoints; it is reported as rejected and everything else still applies.
   * `superseded`, the batch's older changes, may fill TOASTed columns a newer row left unchanged.
   */
  async applyBatch(m: TableMapping, latest: readonly ChangeEvent[], audit?: BatchAudit, superseded: readonly ChangeEvent[] = []): Promise<RowDecision[]> {
    if (latest.length === 0 && !audit?.extra.length) return [];
    let shape: TableShape | undefined;
    try {
      shape = latest.length ? await this.ensureTable(m, latest) : undefined;
    } catch (err) {
      // Losing the server while reading the table's shape is as transient as losing it mid-write.
      throw err instanceof TrustsyncError ? err : classifyPgError(err, `preparing to write ${targetName(m.table)}`);
    }
    const target = targetName(m.table);
    return this.transaction(
      `writing ${latest.length} rows to ${target}`,
      async (client) => {
        const decisions = shape ? await this.applyIsolating(client, m, shape, [...latest], superseded) : [];
        if (audit) await recordHistory(client, audit.flow, [...audit.extra, ...decisions.map((d) => decisionRow(target, d))], audit.batchId);
        return decisions;
      },
      truncationLock(target, 'shared'),
    );
  }

  private applyIsolating(
    client: pg.PoolClient,
    m: TableMapping,
    shape: TableShape,
    set: ChangeEvent[],
    superseded: readonly ChangeEvent[],
  ): Promise<RowDecision[]> {
    return applyIsolating(set, (part) => this.applySet(client, m, shape, part, superseded), {
      mark: () => client.query('SAVEPOINT trustsync_rows'),
      release: () => client.query('RELEASE SAVEPOINT trustsync_rows'),
      rollBack: () => client.query('ROLLBACK TO SAVEPOINT trustsync_rows'),
      isRowError: isRowDataPgError,
      rejected: (err, e) => classifyPgError(err, `${targetName(m.table)} key ${e.keyText}`) as RowRejected,
    });
  }

  private async applySet(
    client: pg.PoolClient,
    m: TableMapping,
    shape: TableShape,
    set: ChangeEvent[],
    superseded: readonly ChangeEvent[],
  ): Promise<RowDecision[]> {
    const target = targetName(m.table);
    const ranks = set.map((e) => positionRank(e.position).toString());
    const has = (c: string) => shape.columns.has(c);
    // Each row mapped once: its placeholders go to the claim, its other columns to the upsert.
    const mapped = set.map((e) => (e.after ? mapRow(m, e.after) : null));
    const unchanged = mapped.map((row) => {
      const columns = row ? unchangedColumns(row, has) : [];
      return columns.length ? JSON.stringify(columns) : null;
    });
    const { rows } = await client.query<{ key: string; won: boolean; prior: string | null; truncated: string | null }>(CLAIM_POSITIONS, [
      target,
      set.map((e) => e.keyText),
      ranks,
      set.map((e) => e.op === 'd'),
      // Most batches meet no placeholder: one NULL then stands for all.
      unchanged.some((u) => u !== null) ? unchanged : null,
    ]);
    const outcome = new Map(rows.map((r) => [r.key, r]));
    const decisions: RowDecision[] = [];
    const winners: ChangeEvent[] = [];
    const winnerRows = new Map<ChangeEvent, Row>();
    set.forEach((e, i) => {
      const r = outcome.get(e.keyText)!;
      if (r.won) {
        winners.push(e);
        if (mapped[i]) winnerRows.set(e, mapped[i]!);
      } else if (r.prior !== null && r.prior === r.truncated)
        decisions.push({ decision: 'skipped', reason: 'stale', event: e, storedPosition: r.prior, beforeTruncate: true });
      else decisions.push({ decision: 'skipped', reason: r.prior === ranks[i] ? 'duplicate' : 'stale', event: e, storedPosition: r.prior ?? '0' });
    });

    const deletes = winners.filter((e) => e.op === 'd');
    if (deletes.length) {
      const keyCols = typedColumns(shape, shape.keyColumns);
      const keyRows = deletes.map((e) => mapRow(m, e.key));
      await client.query(
        deleteStatement(m.table, keyCols),
        keyCols.map((c) => keyRows.map((r) => sqlText(r[c.name], undefined))),
      );
    }

    const groups = upsertGroups(
      m,
      winners.filter((e) => e.op !== 'd').map((e) => ({ event: e, row: winnerRows.get(e)! })),
      has,
    );
    for (const g of groups) {
      const columns = typedColumns(shape, g.columns);
      const params = g.columns.map((c) => g.rows.map(({ row, fields }) => sqlText(row[c], fields[c])));
      await client.query(upsertStatement(m.table, columns, shape.keyColumns, g.onlyIfAbsent), params);
    }
    for (const e of winners) decisions.push({ decision: 'applied', event: e });
    // Only keys that may hold columns an older change has to fill: a winner left some unchanged, or a change lost.
    const open = new Set(set.filter((e, i) => unchanged[i] !== null || !outcome.get(e.keyText)!.won).map((e) => e.keyText));
    if (open.size)
      decisions.push(
        ...(await this.fillUnchanged(
          client,
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
  private async fillUnchanged(client: pg.PoolClient, m: TableMapping, shape: TableShape, candidates: readonly ChangeEvent[]): Promise<RowDecision[]> {
    const target = targetName(m.table);
    const { rows } = await client.query<{ key: string; position: string; held: Record<string, string> }>(HELD_COLUMN_POSITIONS, [
      target,
      [...new Set(candidates.map((e) => e.keyText))],
    ]);
    if (rows.length === 0) return [];
    const byKey = carriersByKey(m, candidates);
    const decisions: RowDecision[] = [];
    const heldKeys: string[] = [];
    const heldNow: string[] = [];
    // One statement per set of columns filled together.
    const groups = new Map<string, { columns: string[]; rows: { key: Row; values: Row; fields: Record<string, FieldType> }[] }>();
    for (const r of rows) {
      const fill = planFill(m, r.held, r.position, byKey.get(r.key) ?? []);
      if (!fill) continue;
      heldKeys.push(r.key);
      heldNow.push(JSON.stringify(fill.held));
      decisions.push(...fill.decisions);
      const columns = Object.keys(fill.values).sort();
      const signature = columns.join(',');
      let g = groups.get(signature);
      if (!g) groups.set(signature, (g = { columns, rows: [] }));
      g.rows.push({ key: mapRow(m, byKey.get(r.key)![0]!.event.key), values: fill.values, fields: fill.fields });
    }
    const keyCols = typedColumns(shape, shape.keyColumns);
    for (const g of groups.values()) {
      const columns = typedColumns(shape, g.columns);
      await client.query(fillStatement(m.table, keyCols, columns), [
        ...keyCols.map((c) => g.rows.map((r) => sqlText(r.key[c.name], undefined))),
        ...g.columns.map((c) => g.rows.map((r) => sqlText(r.values[c], r.fields[c]))),
      ]);
    }
    if (heldKeys.length) await client.query(SET_COLUMN_POSITIONS, [target, heldKeys, heldNow]);
    return decisions;
  }

  /**
   * The destination's current rows for these keys (columns as PostgreSQL text), by key text; null for
   * a key the table does not hold. One statement, whatever the number of keys.
   */
  async readRows(m: TableMapping, keys: ReadonlyMap<string, Row | null>): Promise<Map<string, Record<string, string | null> | null>> {
    const out = new Map<string, Record<string, string | null> | null>([...keys.keys()].map((k) => [k, null]));
    // A key without its columns is one known to be gone.
    const known = [...keys].filter((e): e is [string, Row] => e[1] !== null);
    const shape = known.length ? await this.shapes.get(m.table) : null;
    if (!shape) return out;
    const texts = known.map(([k]) => k);
    const keyRows = known.map(([, k]) => mapRow(m, k));
    const columns = [...shape.columns.keys()];
    const match = shape.keyColumns.map((c, i) => `t.${quoteIdent(c)} = k.c${i}::${shape.columns.get(c)!}`).join(' AND ');
    const { rows } = await this.pool
      .query<{ ord: string; vals: (string | null)[] }>(
        `SELECT k.ord, ARRAY[${columns.map((c) => `t.${quoteIdent(c)}::text`).join(', ')}] AS vals
           FROM unnest(${shape.keyColumns.map((_, i) => `$${i + 1}::text[]`).join(', ')}) WITH ORDINALITY AS k(${shape.keyColumns.map((_, i) => `c${i}`).join(', ')}, ord)
           JOIN ${qualified(m.table)} t ON ${match}`,
        shape.keyColumns.map((c) => keyRows.map((r) => sqlText(r[c], undefined))),
      )
      .catch((err) => {
        throw classifyPgError(err, `reading the state of ${targetName(m.table)}`);
      });
    for (const r of rows) out.set(texts[Number(r.ord) - 1]!, Object.fromEntries(columns.map((c, i) => [c, r.vals[i] ?? null])));
    return out;
  }

  /**
   * TRUNCATE at the source, applied at its position: every row goes except those a change after the
   * TRUNCATE already wrote (other partitions run ahead), every key the ledger holds is deleted at that
   * position, and the table remembers it, so that a change from before it (other partitions lag) is
   * refused even for a key the ledger never held. A TRUNCATE at or before the one the table remembers
   * (delivered again, or late) is skipped. With `audit`, the decision goes on record in the same
   * transaction. With `wantKeys`, `removed` holds the keys of the rows it removed, by key text.
   */
  async applyTruncate(m: TableMapping, t: TruncateEvent, wantKeys: boolean, audit?: Omit<BatchAudit, 'extra'>): Promise<TruncateDecision> {
    const target = targetName(m.table);
    const position = positionRank(t.position).toString();
    return this.transaction(
      `truncating ${target}`,
      async (client) => {
        const record = async (row: HistoryRow) => {
          if (audit) await recordHistory(client, audit.flow, [row], audit.batchId);
        };
        const prior = (await client.query<{ position: string }>(`SELECT position::text FROM ${LEDGER_SCHEMA}.truncations WHERE target = $1`, [target])).rows[0]
          ?.position;
        if (prior !== undefined && BigInt(prior) >= BigInt(position)) {
          const reason = prior === position ? 'duplicate' : 'stale';
          await record(
            truncateRow(
              target,
              t,
              `skipped-${reason}`,
              reason === 'duplicate' ? 'this TRUNCATE is already applied' : 'a later TRUNCATE of the table is applied',
              prior,
            ),
          );
          const removed = new Map<string, Row | null>();
          if (wantKeys && reason === 'duplicate') {
            const { rows } = await client.query<{ key: string }>(
              `SELECT key FROM ${LEDGER_SCHEMA}.key_positions WHERE target = $1 AND position = $2::numeric AND deleted`,
              [target, position],
            );
            for (const r of rows) removed.set(r.key, null);
          }
          return { decision: 'skipped', reason, storedPosition: prior, removed };
        }
        // Read in here, so that losing the server meanwhile fails (and is retried) like the writes.
        const shape = await this.shapes.get(m.table);
        await client.query(
          `INSERT INTO ${LEDGER_SCHEMA}.truncations (target, position) VALUES ($1, $2) ON CONFLICT (target) DO UPDATE SET position = EXCLUDED.position, truncated_at = now()`,
          [target, position],
        );
        let removed = new Map<string, Row | null>();
        if (shape) {
          const keyObject = `json_build_object(${shape.keyColumns.map((c) => `${quoteLiteral(c)}, t.${quoteIdent(c)}`).join(', ')})`;
          const { rows } = await client.query<{ k: Row }>(
            `DELETE FROM ${qualified(m.table)} t
              WHERE NOT EXISTS (SELECT 1 FROM ${LEDGER_SCHEMA}.key_positions kp WHERE kp.target = $1 AND kp.key = ${keyTextExpr(shape.keyColumns)} AND kp.position > $2::numeric)
              ${wantKeys ? `RETURNING ${keyObject} AS k` : ''}`,
            [target, position],
          );
          removed = new Map(rows.map((r) => [keyTextOf(r.k), r.k]));
        }
        await client.query(
          `UPDATE ${LEDGER_SCHEMA}.key_positions SET deleted = true, position = $2::numeric, changed_at = now(), deleted_at = now(), column_positions = NULL WHERE target = $1 AND position < $2::numeric`,
          [target, position],
        );
        await record(truncateRow(target, t, 'truncated', 'TRUNCATE, truncate policy apply'));
        return { decision: 'truncated', removed };
      },
      truncationLock(target, 'exclusive'),
    );
  }
}
