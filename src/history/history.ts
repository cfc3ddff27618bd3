import type { ChangeEvent, RecordOrigin } from '../model/change.js';
import { positionRank } from '../order/position.js';

/**
 * The append-only record of every decision trustsync makes, beside the data in the destination
 * database. Rows about a batch are written in the batch's own transaction: the history never tells
 * of a write that did not happen, and no write happens without its history.
 */
export const HISTORY_DDL = `
CREATE SCHEMA IF NOT EXISTS trustsync;
CREATE TABLE IF NOT EXISTS trustsync.history (
  id               bigserial PRIMARY KEY,
  flow             text NOT NULL,
  target           text NOT NULL,
  entity           text,
  key              text NOT NULL,
  op               text,
  decision         text NOT NULL,
  reason           text,
  position         numeric(40,0),
  stored_position  numeric(40,0),
  origin_topic     text,
  origin_partition integer,
  origin_offset    bigint,
  tx_id            text,
  source_ts        timestamptz,
  capture_ts       timestamptz,
  decided_at       timestamptz NOT NULL DEFAULT now(),
  new_values       jsonb
);
CREATE INDEX IF NOT EXISTS history_by_key ON trustsync.history (target, key, id);
ALTER TABLE trustsync.history ADD COLUMN IF NOT EXISTS fields jsonb;
ALTER TABLE trustsync.history ADD COLUMN IF NOT EXISTS field text;
ALTER TABLE trustsync.history ADD COLUMN IF NOT EXISTS old_values jsonb;
ALTER TABLE trustsync.history ADD COLUMN IF NOT EXISTS correlation_id text;
ALTER TABLE trustsync.history ADD COLUMN IF NOT EXISTS idempotency_key text;
CREATE TABLE IF NOT EXISTS trustsync.entity_snapshots (
  target      text NOT NULL,
  key         text NOT NULL,
  history_id  bigint NOT NULL,
  decided_at  timestamptz NOT NULL,
  believed    jsonb,
  PRIMARY KEY (target, key, history_id)
);
CREATE INDEX IF NOT EXISTS history_by_correlation ON trustsync.history (correlation_id) WHERE correlation_id IS NOT NULL;
`;

export type HistoryDecision =
  | 'applied'
  | 'unchanged'
  | 'echo-suppressed'
  | 'review-resolved'
  | 'rejected-authority'
  | 'rejected-validation'
  | 'conflict-resolved'
  | 'review-requested'
  | 'repaired'
  | 'canary'
  | 'skipped-stale'
  | 'skipped-duplicate'
  | 'superseded'
  | 'dead-lettered'
  | 'retried'
  | 'truncated'
  | 'ignored';

export interface HistoryRow {
  target: string;
  entity: string | null;
  key: string;
  op: string | null;
  decision: HistoryDecision;
  reason: string | null;
  position: string | null;
  storedPosition: string | null;
  origin: RecordOrigin | null;
  txId: string | null;
  sourceTsMs: number | null;
  captureTsMs: number | null;
  newValues: unknown;
  /** Under policy: what was decided for each field, and why. */
  fields?: unknown;
  /** The one field a decision is about (field-level decisions under policy). */
  field?: string | null;
  /** The values before the change, where the source told them (before-image) or the destination held them. */
  oldValues?: unknown;
  /** The source change a decision is about — the same in every flow, retry and replay that meets it. */
  correlationId?: string | null;
  /** The write record's key when trustsync wrote (under policy: trustsync.outbound). */
  idempotencyKey?: string | null;
}

/** A history row about one change event. */
export function eventRow(target: string, e: ChangeEvent, decision: HistoryDecision, reason: string | null, storedPosition: string | null = null): HistoryRow {
  return {
    target,
    entity: e.entity,
    key: e.keyText,
    op: e.op,
    decision,
    reason,
    position: positionRank(e.position).toString(),
    storedPosition,
    origin: e.origin,
    txId: e.txId,
    sourceTsMs: e.sourceTsMs,
    captureTsMs: e.captureTsMs,
    newValues: decision === 'applied' ? e.after : null,
    oldValues: decision === 'applied' ? e.before : null,
    correlationId: changeId(e),
  };
}

/** A source change's identity: its table, key and position. */
export function changeId(e: ChangeEvent): string {
  return `${e.entity}/${e.keyText}@${positionRank(e.position)}`;
}

/** PostgreSQL text cannot hold NUL; an error message quoting binary input might. */
const text = (v: string | null) => (v === null ? null : v.replaceAll('\u0000', '\\0'));
const bigintAsText = (_: string, x: unknown) => (typeof x === 'bigint' ? x.toString() : x);

/** The columns of a history row as the batch's JSON document carries them, in the table's order. */
const HISTORY_COLUMNS = `target text, entity text, key text, op text, decision text, reason text, position numeric, stored_position numeric,
  origin_topic text, origin_partition int, origin_offset bigint, tx_id text, source_ms float8, capture_ms float8,
  new_values jsonb, fields jsonb, field text, old_values jsonb, correlation_id text, idempotency_key text`;

/**
 * One statement for any number of history rows, sent as one JSON document: serialised natively in
 * one pass, where twenty PostgreSQL arrays were escaped element by element. With `skipRecorded`, a
 * row whose change already has this decision on record for its target is left out.
 */
export function historyInsert(flow: string, rows: readonly HistoryRow[], skipRecorded = false): { text: string; values: unknown[] } {
  const records = rows.map((r) => ({
    target: r.target,
    entity: r.entity,
    key: text(r.key),
    op: r.op,
    decision: r.decision,
    reason: text(r.reason),
    position: r.position,
    stored_position: r.storedPosition,
    origin_topic: r.origin?.topic ?? null,
    origin_partition: r.origin?.partition ?? null,
    origin_offset: r.origin?.offset ?? null,
    tx_id: r.txId,
    source_ms: r.sourceTsMs,
    capture_ms: r.captureTsMs,
    new_values: r.newValues ?? null,
    fields: r.fields ?? null,
    field: r.field ?? null,
    old_values: r.oldValues ?? null,
    correlation_id: r.correlationId ?? null,
    idempotency_key: r.idempotencyKey ?? null,
  }));
  let document: string;
  try {
    document = JSON.stringify(records);
  } catch {
    document = JSON.stringify(records, bigintAsText); // Avro longs are BigInts; a replacer is slow, so only then
  }
  const unrecorded = skipRecorded
    ? `
       WHERE r.correlation_id IS NULL OR NOT EXISTS (SELECT 1 FROM trustsync.history h WHERE h.correlation_id = r.correlation_id AND h.target = r.target AND h.decision = r.decision)`
    : '';
  return {
    text: `INSERT INTO trustsync.history (flow, target, entity, key, op, decision, reason, position, stored_position, origin_topic, origin_partition, origin_offset, tx_id, source_ts, capture_ts, new_values, fields, field, old_values, correlation_id, idempotency_key)
      SELECT $1, r.target, r.entity, r.key, r.op, r.decision, r.reason, r.position, r.stored_position, r.origin_topic, r.origin_partition, r.origin_offset, r.tx_id,
             to_timestamp(r.source_ms / 1000), to_timestamp(r.capture_ms / 1000), r.new_values, r.fields, r.field, r.old_values, r.correlation_id, r.idempotency_key
        FROM json_to_recordset($2::json) AS r(${HISTORY_COLUMNS})${unrecorded}`,
    values: [flow, document],
  };
}
