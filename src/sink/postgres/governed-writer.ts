import { createHash } from 'node:crypto';
import type pg from 'pg';
import { UNAVAILABLE_VALUE, type ChangeEvent, type Row } from '../../model/change.js';
import { positionRank } from '../../order/position.js';
import { NEVER_SET, unchangedColumns } from '../../order/unchanged-columns.js';
import { resolveChange, type FieldOutcome, type Resolution, type Values } from '../../policy/resolve.js';
import { compareVersionVectors, mergeVersionVectors, vectorFromJson, vectorToJson, type VersionVector } from '../../policy/vector.js';
import { CURRENT_XID, RECORD_OUTBOUND } from './governed-sql.js';
import type { TableShape } from './postgres-sink.js';
import { mapFields, mapRow, targetName, type TableMapping } from '../../model/table.js';
import { qualified, quoteIdent, sqlText, upsertStatement } from './sql.js';
import type { EchoRecord, Governance, GovernedDecision, ReviewItem } from '../governance.js';
import { holdRestore, pendingRestore } from './restore-in-source.js';

/** A destination-side change the source has not seen yet, remembered by field: its transaction outlives the row's xmin. */
interface LocalEdit {
  xid: string;
  commitUs: string | null;
  value: unknown;
}

interface RowStateRecord {
  vector: VersionVector;
  knownXid: string | null;
  knownValues: Values | null;
  localEdits: Readonly<Record<string, LocalEdit>>;
  /** Columns the newest applied change left unchanged (TOAST) → the rank of the change that set the value held (unchanged-columns.ts). */
  held: Readonly<Record<string, string>>;
}

interface OutboundWrite {
  keyText: string;
  originSystem: string;
  originPosition: string | null;
  originTxId: string | null;
  /** Values of what caused the write, by field: the other side is known to agree once the echo comes back. */
  originValues: Values;
  fields: string[];
  op: string;
  vector: VersionVector;
  idempotencyKey: string;
}

interface LocalRow {
  xmin: string;
  commitUs: bigint | null;
  values: Record<string, unknown>;
}

const isJsonType = (type: string) => type === 'jsonb' || type === 'json';
/** A column's value as trustsync compares it: PostgreSQL's text, JSON parsed. */
export const fromPgText = (text: string | null, type: string): unknown => (text === null ? null : isJsonType(type) ? JSON.parse(text) : text);
const toPgText = (value: unknown, type: string): string | null =>
  value === null || value === undefined ? null : isJsonType(type) ? JSON.stringify(value) : String(value);
const same = (a: unknown, b: unknown) => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);

/** One batch's work inside its transaction. */
export class GovernedWriter {
  private readonly target: string;
  private readonly columns: string[];
  private xid: string | undefined;

  constructor(
    private readonly client: pg.PoolClient,
    private readonly m: TableMapping,
    private readonly shape: TableShape,
    private readonly g: Governance,
    /** The source's database is at hand: a delete lost to a change here is put back there. */
    private readonly restoresInSource = false,
  ) {
    this.target = targetName(m.table);
    this.columns = [...shape.columns.keys()];
  }

  private type(column: string): string {
    return this.shape.columns.get(column)!;
  }

  /** The destination key of a change, as values in key-column order. */
  private eventKey(e: ChangeEvent): unknown[] {
    const key = mapRow(this.m, e.key);
    return this.shape.keyColumns.map((c) => key[c]);
  }

  private keyMatch(key: readonly unknown[]): { where: string; params: (string | null)[] } {
    const where = this.shape.keyColumns.map((c, i) => `t.${quoteIdent(c)} = $${i + 1}::${this.type(c)}`).join(' AND ');
    return { where, params: key.map((v) => sqlText(v, undefined)) };
  }

  private async readRow(key: readonly unknown[]): Promise<LocalRow | null> {
    const { where, params } = this.keyMatch(key);
    const { rows } = await this.client.query<{ xmin: string; commit_us: string | null; vals: (string | null)[] }>(
      `SELECT t.xmin::text AS xmin,
              CASE WHEN current_setting('track_commit_timestamp') = 'on'
                   THEN (extract(epoch FROM pg_xact_commit_timestamp(t.xmin)) * 1000000)::bigint::text END AS commit_us,
              ARRAY[${this.columns.map((c) => `t.${quoteIdent(c)}::text`).join(', ')}] AS vals
         FROM ${qualified(this.m.table)} t WHERE ${where} FOR UPDATE`,
      params,
    );
    const r = rows[0];
    if (!r) return null;
    return {
      xmin: r.xmin,
      commitUs: r.commit_us === null ? null : BigInt(r.commit_us),
      values: Object.fromEntries(this.columns.map((c, i) => [c, fromPgText(r.vals[i] ?? null, this.type(c))])),
    };
  }

  /** The record's state under policy; a record never seen starts with an empty vector and nothing agreed. */
  private async stateOf(keyText: string): Promise<RowStateRecord> {
    return (await this.readState(keyText)) ?? { vector: {}, knownXid: null, knownValues: null, localEdits: {}, held: {} };
  }

  private async readState(keyText: string): Promise<RowStateRecord | null> {
    const { rows } = await this.client.query<{
      vector: Record<string, string>;
      known_xid: string | null;
      known_values: Values | null;
      local_edits: Record<string, LocalEdit>;
      column_positions: Record<string, string> | null;
    }>(
      'SELECT vector, known_xid::text AS known_xid, known_values, local_edits, column_positions FROM trustsync.row_state WHERE target = $1 AND key = $2 FOR UPDATE',
      [this.target, keyText],
    );
    const r = rows[0];
    return r
      ? { vector: vectorFromJson(r.vector), knownXid: r.known_xid, knownValues: r.known_values, localEdits: r.local_edits, held: r.column_positions ?? {} }
      : null;
  }

  private async saveState(keyText: string, s: RowStateRecord): Promise<void> {
    await this.client.query(
      `INSERT INTO trustsync.row_state AS rs (target, key, vector, known_xid, known_values, local_edits, column_positions, changed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, now())
       ON CONFLICT (target, key) DO UPDATE SET vector = EXCLUDED.vector, known_xid = EXCLUDED.known_xid, known_values = EXCLUDED.known_values,
         local_edits = EXCLUDED.local_edits, column_positions = EXCLUDED.column_positions, changed_at = now()`,
      [
        this.target,
        keyText,
        JSON.stringify(vectorToJson(s.vector)),
        s.knownXid,
        s.knownValues === null ? null : JSON.stringify(s.knownValues),
        JSON.stringify(s.localEdits),
        Object.keys(s.held).length ? JSON.stringify(s.held) : null,
      ],
    );
  }

  /** An event's row in the destination's terms: renamed, only columns the table has, each as PostgreSQL's text of it. */
  private async normalize(e: ChangeEvent): Promise<{ after: Record<string, unknown> | null; before: Record<string, unknown> | null }> {
    const pick = (row: Row | null) => {
      if (!row) return null;
      const mapped = mapRow(this.m, row);
      return Object.keys(mapped)
        .filter((c) => this.shape.columns.has(c) && mapped[c] !== UNAVAILABLE_VALUE)
        .map((c) => ({ c, mapped }));
    };
    const fields = mapFields(this.m, e.fields);
    const parts = [pick(e.after), pick(e.before)];
    const params: (string | null)[] = [];
    const arrays = parts.map((cols) =>
      cols === null || cols.length === 0
        ? 'NULL::text[]'
        : `ARRAY[${cols.map(({ c, mapped }) => {
            params.push(sqlText(mapped[c], fields[c]));
            return `$${params.length}::text::${this.type(c)}::text`;
          })}]::text[]`,
    );
    const { rows } = await this.client.query<{ after: (string | null)[] | null; before: (string | null)[] | null }>(
      `SELECT ${arrays[0]} AS after, ${arrays[1]} AS before`,
      params,
    );
    const build = (cols: ReturnType<typeof pick>, texts: (string | null)[] | null) =>
      cols === null ? null : Object.fromEntries(cols.map(({ c }, i) => [c, fromPgText(texts?.[i] ?? null, this.type(c))]));
    return { after: build(parts[0]!, rows[0]!.after), before: build(parts[1]!, rows[0]!.before) };
  }

  private async currentXid(): Promise<string> {
    if (this.xid === undefined) this.xid = (await this.client.query<{ xid: string }>(CURRENT_XID)).rows[0]!.xid;
    return this.xid;
  }

  async apply(e: ChangeEvent, echo: EchoRecord | undefined): Promise<GovernedDecision> {
    const { g } = this;
    const state = await this.stateOf(e.keyText);
    const row = await this.readRow(this.eventKey(e));
    const keyColumns = new Set(this.shape.keyColumns);
    const nonKey = (values: Record<string, unknown> | null) => (values ? Object.fromEntries(Object.entries(values).filter(([c]) => !keyColumns.has(c))) : null);

    if (echo) {
      // trustsync wrote this into the source: never sent back. The source has now seen the destination's
      // change that caused it: fields still holding that change's values are agreed by both sides.
      const known: Record<string, unknown> = { ...(state.knownValues ?? {}) };
      if (row && echo.originValues) for (const [c, v] of Object.entries(echo.originValues)) if (c in row.values && same(row.values[c], v)) known[c] = v;
      const vector = echo.originPosition === null ? state.vector : mergeVersionVectors(state.vector, { [g.destinationSystem]: echo.originPosition });
      const agreed = row !== null && Object.entries(nonKey(row.values)!).every(([c, v]) => same(known[c], v));
      const localEdits = Object.fromEntries(Object.entries(state.localEdits).filter(([c]) => !(row && same(known[c], row.values[c]))));
      // Our delete coming back, with the row gone here too: both sides agree the record is gone.
      const knownValues = row ? known : e.op === 'd' ? null : state.knownValues;
      await this.saveState(e.keyText, {
        vector,
        knownValues,
        knownXid: agreed ? row!.xmin : row ? state.knownXid : null,
        localEdits,
        held: row ? state.held : {},
      });
      return { decision: 'echo', event: e, echo };
    }

    const position = positionRank(e.position);
    const seen = state.vector[g.sourceSystem] ?? -1n;
    if (position <= seen) {
      const filled = position < seen ? await this.fillHeld(e, state, row, seen) : null;
      return filled ?? { decision: 'skipped', reason: position === seen ? 'duplicate' : 'stale', event: e, storedPosition: seen.toString() };
    }

    const { after, before } = await this.normalize(e);
    const incomingValues = nonKey(after);
    const beforeValues = nonKey(before);
    const localValues = nonKey(row?.values ?? null);
    const known = state.knownValues;

    const { localChanged, localEdits, fieldChanges } = this.localSide(state, row, localValues, beforeValues);
    const localDeleted = row === null && known !== null;
    const incomingChanged = new Set<string>();
    if (incomingValues) {
      const from = e.op === 'u' ? (beforeValues ?? known) : null;
      for (const [c, v] of Object.entries(incomingValues)) if (!from || !(c in from) || !same(from[c], v)) incomingChanged.add(c);
    }

    const unseen = localChanged.size > 0 || localDeleted;
    const destSeen = state.vector[g.destinationSystem] ?? 0n;
    const incoming: VersionVector = { [g.sourceSystem]: position, [g.destinationSystem]: destSeen };
    // Never seen from the source: -1, below even a snapshot read (position 0).
    const stored: VersionVector = { ...state.vector, [g.sourceSystem]: seen, [g.destinationSystem]: destSeen + (unseen ? 1n : 0n) };
    const order = compareVersionVectors(incoming, stored);

    const resolution = resolveChange({
      policy: g.policy,
      base: known,
      peerRestoresKeptRows: this.restoresInSource,
      incoming: { system: g.sourceSystem, values: incomingValues, changed: incomingChanged, deleted: e.op === 'd', commitTsUs: e.sourceTsUs, txId: e.txId },
      local: {
        system: g.destinationSystem,
        values: localValues,
        changed: localChanged,
        deleted: localDeleted,
        commitTsUs: row?.commitUs ?? null,
        txId: row?.xmin ?? null,
        fieldChanges,
      },
    });

    let xid: string | null = null;
    let nextKnown: Values | null = known;
    let nextKnownXid = state.knownXid;
    if (resolution.action === 'delete') {
      const { where, params } = this.keyMatch(this.eventKey(e));
      await this.client.query(`DELETE FROM ${qualified(this.m.table)} AS t WHERE ${where}`, params);
      xid = await this.recordWrite(this.changeWrite(e, resolution, 'delete', {}, incoming));
      nextKnown = null;
      nextKnownXid = null;
    } else {
      const result: Record<string, unknown> = { ...(localValues ?? {}), ...(resolution.action === 'upsert' ? resolution.writes : {}) };
      if (resolution.action === 'upsert') {
        await this.write(this.eventKey(e), resolution.writes, row !== null);
        xid = await this.recordWrite(this.changeWrite(e, resolution, row ? 'update' : 'insert', incomingValues ?? {}, incoming));
      }
      if (row || resolution.action === 'upsert') {
        // Agreed from now on: whatever both sides hold the same; the rest keeps its last agreed value.
        const agreed: Record<string, unknown> = { ...(known ?? {}) };
        for (const [c, v] of Object.entries(result)) if (incomingValues && c in incomingValues && same(incomingValues[c], v)) agreed[c] = v;
        nextKnown = agreed;
        // The row's xmin vouches for the agreed values only when they are the whole row.
        const whole = Object.entries(result).every(([c, v]) => same(agreed[c], v));
        nextKnownXid = whole ? (xid ?? row?.xmin ?? null) : null;
      }
    }
    // Carried out in the source only once this decision has committed here (GovernedSink.restorePending).
    if (resolution.restoreInSource && this.restoresInSource && row) await holdRestore(this.client, pendingRestore(this.m, this.g, e, row.values));
    const stillLocal = Object.fromEntries(
      Object.entries(localEdits).filter(([c, l]) => nextKnown !== null && !same(nextKnown[c], l.value) && resolution.writes[c] === undefined),
    );
    // Columns this change left unchanged (TOAST) keep the position of the change that set their value.
    const held =
      e.op === 'd' || nextKnown === null
        ? {}
        : Object.fromEntries(this.placeholderColumns(e).map((c) => [c, state.held[c] ?? (row ? seen : NEVER_SET).toString()]));
    await this.saveState(e.keyText, {
      vector: { ...state.vector, [g.sourceSystem]: position },
      knownValues: nextKnown,
      knownXid: nextKnownXid,
      localEdits: stillLocal,
      held,
    });
    await this.queueReviews(e, resolution.fields, incoming, stored);
    return {
      decision: 'resolved',
      event: e,
      resolution,
      order,
      incoming,
      stored,
      xid,
      local: localValues,
      idempotencyKey: xid === null ? null : this.idempotencyKeyOf(e),
    };
  }

  /**
   * The destination's own changes the source has not seen: differences from the agreed values —
   * except where the destination holds exactly what the source's change started from — each with
   * the transaction that made it (a later write of ours replaces the row's xmin).
   */
  private localSide(state: RowStateRecord, row: LocalRow | null, localValues: Values | null, beforeValues: Values | null) {
    const known = state.knownValues;
    const localChanged = new Set<string>();
    if (row && localValues && row.xmin !== state.knownXid) {
      for (const [c, v] of Object.entries(localValues)) {
        if (known ? same(known[c], v) : v === null) continue;
        if (beforeValues && c in beforeValues && same(beforeValues[c], v)) continue;
        localChanged.add(c);
      }
    }
    const localEdits: Record<string, LocalEdit> = {};
    for (const c of localChanged) {
      const prev = state.localEdits[c];
      localEdits[c] =
        prev && same(prev.value, localValues![c]) ? prev : { xid: row!.xmin, commitUs: row!.commitUs?.toString() ?? null, value: localValues![c] };
    }
    const fieldChanges = Object.fromEntries(
      Object.entries(localEdits).map(([c, l]) => [c, { txId: l.xid, commitTsUs: l.commitUs === null ? null : BigInt(l.commitUs) }]),
    );
    return { localChanged, localEdits, fieldChanges };
  }

  /** The destination columns a change left unchanged (Debezium's TOAST placeholder). */
  private placeholderColumns(e: ChangeEvent): string[] {
    return e.after ? unchangedColumns(mapRow(this.m, e.after), (c) => this.shape.columns.has(c) && !this.shape.keyColumns.includes(c)) : [];
  }

  /**
   * A change older than the record's newest, carrying values for columns that newest change left
   * unchanged (TOAST): each one newer than the value held fills it, weighed by the policy as a change
   * of just those fields (authority, validation, a concurrent edit here). Null when nothing is filled.
   */
  private async fillHeld(e: ChangeEvent, state: RowStateRecord, row: LocalRow | null, seen: bigint): Promise<GovernedDecision | null> {
    if (e.op === 'd' || !e.after || !row) return null;
    const rank = positionRank(e.position);
    const mapped = mapRow(this.m, e.after);
    const carried = Object.keys(state.held).filter((c) => mapped[c] !== undefined && mapped[c] !== UNAVAILABLE_VALUE && rank > BigInt(state.held[c]!));
    if (carried.length === 0) return null;
    const { after } = await this.normalize(e);
    const incomingValues = Object.fromEntries(carried.map((c) => [c, after![c]]));
    const keyColumns = new Set(this.shape.keyColumns);
    const localValues = Object.fromEntries(Object.entries(row.values).filter(([c]) => !keyColumns.has(c)));
    const { localChanged, localEdits, fieldChanges } = this.localSide(state, row, localValues, null);
    const { g } = this;
    const resolution = resolveChange({
      policy: g.policy,
      base: state.knownValues,
      peerRestoresKeptRows: false,
      incoming: { system: g.sourceSystem, values: incomingValues, changed: new Set(carried), deleted: false, commitTsUs: e.sourceTsUs, txId: e.txId },
      local: {
        system: g.destinationSystem,
        values: localValues,
        changed: localChanged,
        deleted: false,
        commitTsUs: row.commitUs,
        txId: row.xmin,
        fieldChanges,
      },
    });
    const writes = Object.fromEntries(Object.entries(resolution.writes).filter(([c]) => carried.includes(c)));
    if (resolution.action !== 'upsert' || Object.keys(writes).length === 0) return null;
    await this.write(this.eventKey(e), writes, true);
    const incoming: VersionVector = { [g.sourceSystem]: rank, [g.destinationSystem]: state.vector[g.destinationSystem] ?? 0n };
    const xid = await this.recordWrite(this.changeWrite(e, { ...resolution, writes }, 'update', incomingValues, incoming));
    await this.saveState(e.keyText, {
      vector: state.vector,
      knownValues: { ...(state.knownValues ?? {}), ...writes },
      knownXid: null,
      localEdits: Object.fromEntries(Object.entries(localEdits).filter(([c]) => !(c in writes))),
      held: { ...state.held, ...Object.fromEntries(Object.keys(writes).map((c) => [c, rank.toString()])) },
    });
    return {
      decision: 'filled',
      event: e,
      columns: Object.keys(writes),
      values: writes,
      rowPosition: seen.toString(),
      xid,
      idempotencyKey: this.idempotencyKeyOf(e),
    };
  }

  async resolveReview(item: ReviewItem, chosen: unknown, take: string): Promise<{ wrote: boolean; detail: string; xid: string | null }> {
    let xid: string | null = null;
    let detail: string;
    if (item.field === '*') {
      ({ xid, detail } = await this.resolveRecordReview(item, chosen));
    } else {
      const settled = await this.settleFields(item.key, { [item.field]: chosen }, 'review', `review:${item.id}:${this.target}`);
      xid = settled?.xid ?? null;
      detail = !settled ? 'no such record here' : xid ? 'written' : 'already holds this value';
    }
    await this.client.query(
      `INSERT INTO trustsync.review (id, flow, entity, target, key, field, owner, proposer, kept_value, proposed_value, proposer_tx_id, vectors, policy, status, resolved_at, resolution)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 'resolved', now(), $14)
       ON CONFLICT (id) DO UPDATE SET status = 'resolved', resolved_at = now(), resolution = EXCLUDED.resolution`,
      [
        item.id,
        this.g.flow,
        item.entity,
        this.target,
        item.key,
        item.field,
        item.owner,
        item.proposer,
        JSON.stringify(item.keptValue),
        JSON.stringify(item.proposedValue),
        item.proposerTxId,
        JSON.stringify(item.vectors),
        JSON.stringify(item.policy),
        JSON.stringify({ take, value: chosen, detail }),
      ],
    );
    return { wrote: xid !== null, detail, xid };
  }

  /** A review of a whole record (a delete against an edit): deleted or kept as the person chose. */
  private async resolveRecordReview(item: ReviewItem, chosen: unknown): Promise<{ xid: string | null; detail: string }> {
    const key = parseKeyText(item.key, this.shape.keyColumns.length);
    const state = await this.stateOf(item.key);
    const row = await this.readRow(key);
    if (!(chosen === 'deleted' && row))
      return { xid: null, detail: row ? 'record kept' : chosen === 'kept' ? 'the record is already gone here: recreate it at its owner' : 'already deleted' };
    const { where, params } = this.keyMatch(key);
    await this.client.query(`DELETE FROM ${qualified(this.m.table)} AS t WHERE ${where}`, params);
    const xid = await this.recordWrite({
      keyText: item.key,
      originSystem: 'review',
      originPosition: null,
      originTxId: null,
      originValues: {},
      fields: [],
      op: 'delete',
      vector: state.vector,
      idempotencyKey: `review:${item.id}:${this.target}`,
    });
    await this.saveState(item.key, { vector: state.vector, knownValues: null, knownXid: null, localEdits: state.localEdits, held: {} });
    return { xid, detail: 'record deleted' };
  }

  /**
   * Sets fields of an existing record to values decided outside a captured change (a review, a
   * reconcile repair): written where they differ, with a write record so the capture is not sent
   * back, and agreed by both sides from now on. Null when the record is not here.
   */
  async settleFields(keyText: string, values: Values, origin: string, idempotencyKey: string): Promise<{ xid: string | null; written: Values } | null> {
    const key = parseKeyText(keyText, this.shape.keyColumns.length);
    const state = await this.stateOf(keyText);
    const row = await this.readRow(key);
    if (!row) return null;
    const differing = Object.fromEntries(Object.entries(values).filter(([c, v]) => !same(row.values[c], v)));
    let xid: string | null = null;
    if (Object.keys(differing).length) {
      await this.write(key, differing, true);
      xid = await this.recordWrite({
        keyText,
        originSystem: origin,
        originPosition: null,
        originTxId: null,
        originValues: differing,
        fields: Object.keys(differing),
        op: 'update',
        vector: state.vector,
        idempotencyKey,
      });
    }
    const localEdits = Object.fromEntries(Object.entries(state.localEdits).filter(([c]) => !(c in values)));
    // A value settled here has no source position: no late change fills over it.
    const held = Object.fromEntries(Object.entries(state.held).filter(([c]) => !(c in values)));
    await this.saveState(keyText, { vector: state.vector, knownValues: { ...(state.knownValues ?? {}), ...values }, knownXid: null, localEdits, held });
    return { xid, written: differing };
  }

  /**
   * Writes the decided fields: an UPDATE of just those columns when the row exists (an INSERT … ON
   * CONFLICT would check NOT NULL columns it does not set), else an INSERT of the row.
   */
  private async write(key: readonly unknown[], writes: Record<string, unknown>, exists: boolean): Promise<void> {
    const cols = Object.keys(writes);
    const texts = cols.map((c) => toPgText(writes[c], this.type(c)));
    if (exists) {
      if (cols.length === 0) return;
      const { where, params } = this.keyMatch(key);
      const sets = cols.map((c, i) => `${quoteIdent(c)} = $${params.length + i + 1}::text::${this.type(c)}`);
      await this.client.query(`UPDATE ${qualified(this.m.table)} AS t SET ${sets.join(', ')} WHERE ${where}`, [...params, ...texts]);
      return;
    }
    const all = [...this.shape.keyColumns, ...cols];
    await this.client.query(
      upsertStatement(
        this.m.table,
        all.map((name) => ({ name, type: this.type(name) })),
        this.shape.keyColumns,
        false,
      ),
      [...key.map((v) => sqlText(v, undefined)), ...texts].map((t) => [t]),
    );
  }

  /** The outbound record: what trustsync wrote, in the same transaction, under the transaction's id. */
  private async recordWrite(w: OutboundWrite): Promise<string> {
    const xid = await this.currentXid();
    await this.client.query(RECORD_OUTBOUND, [
      this.target,
      w.keyText,
      xid,
      this.g.flow,
      w.originSystem,
      w.originPosition,
      w.originTxId,
      JSON.stringify(w.originValues),
      w.fields,
      w.op,
      JSON.stringify(vectorToJson(w.vector)),
      w.idempotencyKey,
    ]);
    return xid;
  }

  /** An outbound record for a captured change's write: its values for the fields decided, its vector. */
  private changeWrite(e: ChangeEvent, r: Resolution, op: string, values: Values, vector: VersionVector): OutboundWrite {
    const position = positionRank(e.position).toString();
    return {
      keyText: e.keyText,
      originSystem: this.g.sourceSystem,
      originPosition: position,
      originTxId: e.txId,
      originValues: Object.fromEntries(Object.entries(values).filter(([c]) => r.fields.some((f) => f.field === c))),
      fields: Object.keys(r.writes),
      op,
      vector,
      idempotencyKey: this.idempotencyKeyOf(e),
    };
  }

  private idempotencyKeyOf(e: ChangeEvent): string {
    return `${this.g.flow}:${this.target}:${e.keyText}:${positionRank(e.position)}`;
  }

  private async queueReviews(e: ChangeEvent, outcomes: readonly FieldOutcome[], incoming: VersionVector, stored: VersionVector): Promise<void> {
    for (const o of outcomes) {
      if (o.outcome !== 'review') continue;
      const policy = o.field === '*' ? this.g.policy.default : (this.g.policy.fields.get(o.field) ?? this.g.policy.default);
      await this.client.query(
        `INSERT INTO trustsync.review (id, flow, entity, target, key, field, owner, proposer, kept_value, proposed_value, proposer_tx_id, vectors, policy)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT (id) DO NOTHING`,
        [
          reviewId(this.g.policy.entity, e.keyText, o.field, o.proposer, o.proposerTxId),
          this.g.flow,
          this.g.policy.entity,
          this.target,
          e.keyText,
          o.field,
          o.owner,
          o.proposer,
          JSON.stringify(o.value ?? null),
          JSON.stringify(o.proposed ?? null),
          o.proposerTxId,
          JSON.stringify({ incoming: vectorToJson(incoming), stored: vectorToJson(stored) }),
          JSON.stringify({ owner: policy.owner, writers: policy.writers, strategy: policy.strategy, validators: policy.validators.map((v) => v.name) }),
        ],
      );
    }
  }
}

/**
 * A review item's identity: the entity, key, field and the proposing system's transaction. Both
 * directions of a sync meet the same conflict; they name it alike, so it is queued once.
 */
export function reviewId(entity: string, keyText: string, field: string, proposer: string, proposerTxId: string | null): string {
  return `r-${createHash('sha256')
    .update(JSON.stringify([entity, keyText, field, proposer, proposerTxId]))
    .digest('hex')
    .slice(0, 12)}`;
}

/** Key text back to key values: digits stay text (no precision lost), anything else is JSON. */
function parseKeyText(keyText: string, columns: number): unknown[] {
  if (columns === 1) return [/^-?\d+$/.test(keyText) ? keyText : JSON.parse(keyText)];
  return (JSON.parse(keyText) as unknown[]).map((v) => (typeof v === 'number' ? String(v) : v));
}
