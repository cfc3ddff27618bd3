import type { ChangeEvent, Row } from './change.js';
import type { RowRejected } from './errors.js';
import type { HistoryRow } from './history-row.js';

/** What a sink decided about one change of a batch. */
export type RowDecision =
  | { decision: 'applied'; event: ChangeEvent }
  | { decision: 'skipped'; reason: 'stale' | 'duplicate'; event: ChangeEvent; storedPosition: string; beforeTruncate?: true }
  | { decision: 'rejected'; event: ChangeEvent; error: RowRejected }
  /** An older change gave TOASTed columns the newer row left unchanged their value (unchanged-columns.ts). */
  | { decision: 'filled'; event: ChangeEvent; columns: string[]; values: Row; rowPosition: string };

/**
 * What a TRUNCATE came to: applied, or skipped behind the one the table holds. With keys asked for,
 * `removed` holds the keys of the rows it removed, by key text; delivered again, those the ledger
 * says it removed, their key columns no longer known (null): what an interrupted first delivery
 * removed is then told again.
 */
export type TruncateDecision =
  | { decision: 'truncated'; removed: Map<string, Row | null> }
  | { decision: 'skipped'; reason: 'stale' | 'duplicate'; storedPosition: string; removed: Map<string, Row | null> };

/** What a batch's history adds to its transaction: the flow, and rows beyond the sink's own decisions. */
export interface BatchAudit {
  flow: string;
  /** Superseded changes, retries of this batch: told in the same transaction as the write. */
  extra: HistoryRow[];
  /**
   * The batch's identity, the same for every attempt of it. An attempt may fail after its COMMIT was
   * durable (the server went away before acknowledging it); the retry then finds the batch's mark and
   * records no decision again: the history tells each change of a batch once.
   */
  batchId?: string;
  /** Aborted when the flow stops: a sink that waits (an API's pace, backoff) stops waiting. */
  signal?: AbortSignal;
}
