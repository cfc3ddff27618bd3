import { UNAVAILABLE_VALUE } from '../model/change.js';
import { formatRank } from '../order/position.js';
import { TABLE_KEY } from '../model/history-row.js';

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

/** A decision as a sink's log returns it for `explain`: times as ISO text, positions as digits, values whole. */
export type LoggedDecision = Omit<TimelineEntry, 'values' | 'oldValues'> & {
  id: string;
  key: string;
  newValues: Record<string, unknown> | null;
  oldValues: Record<string, unknown> | null;
};

/** What a sink's log holds about one record, read for `explain`. */
export interface RecordLog {
  /** The record's decisions and its table's TRUNCATEs, oldest first (up to `at`, of `field`). */
  decisions: LoggedDecision[];
  /** The latest snapshot of the record's belief (up to `at`). */
  snapshot: { historyId: string; decidedAt: string; believed: Record<string, unknown> | null } | null;
  ledger: Explanation['ledger'];
  state: Explanation['state'];
}

/** The story of one destination record from what the sink's log holds about it. */
export function explanationOf(target: string, key: string, options: { at?: Date; field?: string; all?: boolean }, log: RecordLog): Explanation {
  const field = options.field ?? null;
  const pick = (values: Record<string, unknown> | null) => (values && field ? { [field]: values[field] } : values);
  const { decisions, snapshot } = log;
  // What was believed: from the latest snapshot the timeline reaches, then the decisions after it.
  const after = decisions.filter((r) => !snapshot || BigInt(r.id) > BigInt(snapshot.historyId));
  const believed = foldBelief(
    snapshot ? snapshot.believed : null,
    after.map((r) => ({ decision: r.decision, op: r.op, new_values: r.newValues })),
  );
  // The table's TRUNCATEs belong to the record's story once it has one (a snapshot says it had);
  // asked for the table's key itself, the story is all of its own.
  const first = key === TABLE_KEY ? 0 : decisions.findIndex((r) => r.key !== TABLE_KEY);
  const story = snapshot ? decisions : decisions.slice(first < 0 ? decisions.length : first);
  const shown = options.all ? story : story.slice(-TIMELINE_LIMIT);
  return {
    target,
    key,
    at: options.at?.toISOString() ?? null,
    field,
    believed: pick(believed),
    earlier: story.length - shown.length,
    snapshotAt: snapshot?.decidedAt ?? null,
    timeline: shown.map((r) => ({
      decidedAt: r.decidedAt,
      decision: r.decision,
      op: r.op,
      position: r.position,
      storedPosition: r.storedPosition,
      origin: r.origin,
      txId: r.txId,
      sourceTs: r.sourceTs,
      reason: r.reason,
      values: pick(withoutPlaceholders(r.newValues)),
      oldValues: pick(withoutPlaceholders(r.oldValues)),
      field: r.field,
      correlationId: r.correlationId,
    })),
    ledger: log.ledger,
    state: log.state ? { ...log.state, agreed: pick(log.state.agreed) } : null,
  };
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
