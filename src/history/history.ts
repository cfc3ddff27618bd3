import type { ChangeEvent, TruncateEvent } from '../model/change.js';
import { TABLE_KEY, type HistoryDecision, type HistoryRow } from '../model/history-row.js';
import { formatRank, positionRank } from '../order/position.js';
import type { RowDecision } from '../model/decision.js';

/** A history row about one change event. */
export function eventRow(target: string, e: ChangeEvent, decision: HistoryDecision, reason: string | null, storedPosition: string | null = null): HistoryRow {
  const position = positionRank(e.position).toString();
  return {
    target,
    entity: e.entity,
    key: e.keyText,
    op: e.op,
    decision,
    reason,
    position,
    storedPosition,
    origin: e.origin,
    txId: e.txId,
    sourceTsMs: e.sourceTsMs,
    captureTsMs: e.captureTsMs,
    newValues: decision === 'applied' ? e.after : null,
    oldValues: decision === 'applied' ? e.before : null,
    correlationId: changeId(e, position),
  };
}

/** Why a late change filled columns the row's newest change left unchanged (TOAST). */
export function filledReason(columns: readonly string[], rowPosition: string): string {
  return `${columns.join(', ')} left unchanged (TOAST) by the change at ${formatRank(rowPosition)}: this change is the newest known to carry ${columns.length === 1 ? 'its value' : 'their values'}`;
}

/** A history row about a TRUNCATE: one for the whole table, whatever its policy made of it. */
export function truncateRow(
  target: string,
  t: TruncateEvent,
  decision: 'truncated' | 'ignored' | 'skipped-duplicate' | 'skipped-stale',
  reason: string,
  storedPosition: string | null = null,
): HistoryRow {
  const position = positionRank(t.position).toString();
  return {
    target,
    entity: t.entity,
    key: TABLE_KEY,
    op: 't',
    decision,
    reason,
    position,
    storedPosition,
    origin: t.origin,
    txId: null,
    sourceTsMs: null,
    captureTsMs: null,
    newValues: null,
    correlationId: changeId({ entity: t.entity, keyText: TABLE_KEY }, position),
  };
}

/** A source change's identity: its table, key (TABLE_KEY for the whole table) and position rank. */
export function changeId(e: Pick<ChangeEvent, 'entity' | 'keyText'>, rank: string): string {
  return `${e.entity}/${e.keyText}@${rank}`;
}

/**
 * A history row about something other than one captured change (a batch's retry, a repair, a
 * review's resolution, a canary): what it is about and decided, the rest told only when known.
 */
export function noteRow(
  target: string,
  key: string,
  decision: HistoryDecision,
  told: Partial<Pick<HistoryRow, 'entity' | 'op' | 'reason' | 'txId' | 'newValues'>> = {},
): HistoryRow {
  return {
    target,
    entity: told.entity ?? null,
    key,
    op: told.op ?? null,
    decision,
    reason: told.reason ?? null,
    position: null,
    storedPosition: null,
    origin: null,
    txId: told.txId ?? null,
    sourceTsMs: null,
    captureTsMs: null,
    newValues: told.newValues ?? null,
  };
}

/** A sink's decision about one change of a batch, as the history tells it. */
export function decisionRow(target: string, d: RowDecision): HistoryRow {
  if (d.decision === 'applied') return eventRow(target, d.event, 'applied', null);
  if (d.decision === 'skipped') {
    const why = d.beforeTruncate
      ? 'a TRUNCATE of the table after this change is applied'
      : d.reason === 'stale'
        ? 'the destination holds a newer change of this key'
        : 'the destination already holds this change';
    return eventRow(target, d.event, d.reason === 'stale' ? 'skipped-stale' : 'skipped-duplicate', why, d.storedPosition);
  }
  if (d.decision === 'filled') return { ...eventRow(target, d.event, 'filled', filledReason(d.columns, d.rowPosition), d.rowPosition), newValues: d.values };
  return eventRow(target, d.event, 'dead-lettered', d.error.message);
}
