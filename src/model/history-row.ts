import type { RecordOrigin } from './change.js';

/**
 * A decision on record: what trustsync decided about a change (or a batch, a table), why, and where
 * the change came from. Every sink keeps these append-only, beside the data.
 */
export type HistoryDecision =
  | 'applied'
  | 'filled'
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
  | 'ignored'
  | 'discarded';

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

/** The history's key of a decision about a whole table (a TRUNCATE). */
export const TABLE_KEY = '*';
