import { UNAVAILABLE_VALUE } from '../model/change.js';
import { formatRank } from '../order/position.js';

/** The story of one destination record, as a sink's decision log tells it (`explain`). */
export interface TimelineEntry {
  decidedAt: string;
  decision: string;
  op: string | null;
  position: string | null;
  storedPosition: string | null;
  origin: string | null;
  txId: string | null;
  sourceTs: string | null;
  reason: string | null;
  values: unknown;
  /** What the record held before, where known. */
  oldValues: unknown;
  /** The field a field-level decision is about. */
  field: string | null;
  /** The source change the decision is about (the same across flows, retries and replays). */
  correlationId: string | null;
}

export interface Explanation {
  target: string;
  key: string;
  /** Only decisions made up to this moment, when asked "what did we believe then". */
  at: string | null;
  /** Only this field's values, when asked about one field. */
  field: string | null;
  timeline: TimelineEntry[];
  /** Decisions before the timeline shown (only the latest are shown unless asked for all). */
  earlier: number;
  /** The snapshot the belief was computed from, if any (when its decision was made). */
  snapshotAt: string | null;
  /** The values last applied within the timeline: what trustsync believed the record to be (null: absent). */
  believed: Record<string, unknown> | null;
  /** What the position ledger holds for the key now. */
  ledger: { position: string; deleted: boolean; changedAt: string } | null;
  /** Under policy: the record's version vector and the values both systems agree on, now. */
  state: { vector: Record<string, string>; agreed: Record<string, unknown> | null; changedAt: string } | null;
}

/** Decisions that change what trustsync believes a record holds. */
export const BELIEF_DECISIONS = new Set(['applied', 'filled', 'truncated', 'review-resolved', 'repaired']);
export const TIMELINE_LIMIT = 50;

export type HistoryRecord = { decision: string; op: string | null; new_values: unknown };

/** How explain shows a TOASTed value the change left as it was (Debezium sent a placeholder, not the value). */
export const UNCHANGED_TOAST = 'unchanged (TOAST)';

export function withoutPlaceholders(values: Record<string, unknown> | null): Record<string, unknown> | null {
  if (!values || !Object.values(values).includes(UNAVAILABLE_VALUE)) return values;
  return Object.fromEntries(Object.entries(values).map(([c, v]) => [c, v === UNAVAILABLE_VALUE ? UNCHANGED_TOAST : v]));
}

/** Folds decisions into the record's values: a delete or truncate empties it, an applied change overlays its values. */
export function foldBelief(start: Record<string, unknown> | null, rows: readonly HistoryRecord[]): Record<string, unknown> | null {
  let believed = start;
  for (const r of rows) {
    if (!BELIEF_DECISIONS.has(r.decision) || (r.new_values === null && r.op !== 'd' && r.op !== 't')) continue;
    if (r.op === 'd' || r.op === 't') believed = null;
    else
      believed = {
        ...(believed ?? {}),
        ...Object.fromEntries(Object.entries(r.new_values as Record<string, unknown>).filter(([, v]) => v !== UNAVAILABLE_VALUE)),
      };
  }
  return believed;
}

const OPS: Record<string, string> = { c: 'insert', u: 'update', d: 'delete', r: 'snapshot read', t: 'truncate' };

/** The explanation as a support person reads it. */
export function formatExplanation(x: Explanation): string {
  const lines = [`${x.target} key ${x.key}${x.field ? `, field ${x.field}` : ''}${x.at ? `, as believed at ${x.at}` : ''}`];
  if (x.earlier) lines.push(`  (${x.earlier} earlier decisions not shown: --all shows them)`);
  if (x.timeline.length === 0) lines.push('  no decisions recorded for this key');
  for (const t of x.timeline) {
    const what = t.op ? (OPS[t.op] ?? t.op) : 'batch';
    const from = t.origin ? ` from ${t.origin}` : '';
    const at = t.position ? ` at ${formatRank(t.position)}` : '';
    lines.push(
      `  ${t.decidedAt}  ${t.decision.padEnd(19)} ${t.field ? `field ${t.field}` : `${what}${at}${from}${t.sourceTs ? ` (committed at source ${t.sourceTs})` : ''}`}`,
    );
    if (t.reason) lines.push(`  ${' '.repeat(24)} why: ${t.reason}`);
    if (t.oldValues && t.field) lines.push(`  ${' '.repeat(24)} was: ${JSON.stringify(t.oldValues).slice(0, 300)}`);
    if (t.values) lines.push(`  ${' '.repeat(24)} values: ${JSON.stringify(t.values).slice(0, 300)}`);
  }
  lines.push(
    `  believed${x.at ? ' then' : ''}: ${x.believed ? JSON.stringify(x.believed).slice(0, 300) : 'no such record'}${x.snapshotAt ? ` (from the snapshot of ${x.snapshotAt} on)` : ''}`,
  );
  if (x.at) return lines.join('\n');
  if (x.ledger)
    lines.push(`  now: ${x.ledger.deleted ? 'deleted (tombstone kept)' : 'present'} at ${formatRank(x.ledger.position)}, since ${x.ledger.changedAt}`);
  else if (x.state) {
    const vector = Object.entries(x.state.vector)
      .map(([system, p]) => `${system} ${formatRank(p)}`)
      .join(', ');
    lines.push(`  now: version vector {${vector}}, since ${x.state.changedAt}`);
    lines.push(`       agreed by both systems: ${x.state.agreed ? JSON.stringify(x.state.agreed).slice(0, 300) : 'the record is gone'}`);
  } else lines.push('  now: never written');
  return lines.join('\n');
}
