import type { FieldOutcome } from '../../policy/resolve.js';
import { vectorToJson } from '../../policy/vector.js';
import { eventRow, filledReason } from '../../history/history.js';
import type { HistoryRow } from '../../model/history-row.js';
import type { GovernedDecision } from '../governance.js';

/** Says in a line what happened to the fields that did not simply apply. */
export function describeOutcomes(outcomes: readonly FieldOutcome[]): string | null {
  const told = outcomes
    .filter((o) => o.outcome !== 'applied')
    .map((o) => {
      if (o.outcome === 'rejected') return `${o.field} rejected (${o.reason}): ${o.detail}`;
      if (o.outcome === 'review') return `${o.field} queued for review: ${o.detail}`;
      return `${o.field} conflict (${o.strategy}): ${o.detail}`;
    });
  return told.length ? told.join('; ') : null;
}

export const jsonable = (v: unknown): unknown => JSON.parse(JSON.stringify(v, (_, x) => (typeof x === 'bigint' ? x.toString() : x)));

const FIELD_DECISION = {
  rejected: { authority: 'rejected-authority', validation: 'rejected-validation' },
  conflict: 'conflict-resolved',
  review: 'review-requested',
} as const;

/**
 * A decision's history: one row for the change, and under policy one row per field that did not
 * simply apply — rejected (authority, validation), conflict resolved, review requested — so a
 * field's story reads on its own.
 */
export function governedHistoryRows(target: string, d: GovernedDecision): HistoryRow[] {
  switch (d.decision) {
    case 'echo':
      return [
        eventRow(
          target,
          d.event,
          'echo-suppressed',
          `trustsync's own write into the source (transaction ${d.echo.xid}, from ${d.echo.originSystem}'s change at ${d.echo.originPosition ?? 'unknown'}): not sent back`,
        ),
      ];
    case 'skipped': {
      const why = d.reason === 'stale' ? 'the destination has already taken a newer change of this source' : 'the destination already holds this change';
      return [eventRow(target, d.event, d.reason === 'stale' ? 'skipped-stale' : 'skipped-duplicate', why, d.storedPosition)];
    }
    case 'rejected':
      return [eventRow(target, d.event, 'dead-lettered', d.error.message)];
    case 'filled':
      return [
        {
          ...eventRow(target, d.event, 'filled', filledReason(d.columns, d.rowPosition), d.rowPosition),
          newValues: jsonable(d.values),
          idempotencyKey: d.idempotencyKey,
        },
      ];
    case 'resolved': {
      const wrote = d.resolution.action !== 'none';
      const base = eventRow(
        target,
        d.event,
        wrote ? 'applied' : 'unchanged',
        [`vectors ${d.order}`, describeOutcomes(d.resolution.fields)].filter(Boolean).join('; '),
      );
      const row: HistoryRow = {
        ...base,
        newValues: wrote ? jsonable(d.resolution.writes) : null,
        oldValues: d.local === null ? null : jsonable(d.local),
        idempotencyKey: d.idempotencyKey,
        fields: jsonable({ order: d.order, incoming: vectorToJson(d.incoming), stored: vectorToJson(d.stored), xid: d.xid, outcomes: d.resolution.fields }),
      };
      const fieldRows = d.resolution.fields
        .filter((o) => o.outcome !== 'applied')
        .map((o): HistoryRow => ({
          ...base,
          decision: o.outcome === 'rejected' ? FIELD_DECISION.rejected[o.reason] : FIELD_DECISION[o.outcome],
          field: o.field,
          reason: o.outcome === 'conflict' ? `${o.strategy}: ${o.detail}` : o.detail,
          newValues: o.outcome === 'rejected' ? null : jsonable({ [o.field]: o.value }),
          oldValues: d.local === null || o.field === '*' ? null : jsonable({ [o.field]: d.local[o.field] ?? null }),
          idempotencyKey: d.idempotencyKey,
        }));
      return [row, ...fieldRows];
    }
  }
}
