import type pg from 'pg';
import { formatRank } from '../order/position.js';

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
  /** The values last applied within the timeline: what trustsync believed the record to be (null: absent). */
  believed: Record<string, unknown> | null;
  /** What the position ledger holds for the key now. */
  ledger: { position: string; deleted: boolean; changedAt: string } | null;
  /** Under policy: the record's version vector and the values both systems agree on, now. */
  state: { vector: Record<string, string>; agreed: Record<string, unknown> | null; changedAt: string } | null;
}

/** The story of one destination record: every decision about its key, oldest first, and where it stands now. */
export async function explainKey(client: pg.Client | pg.Pool, target: string, key: string, options: { at?: Date; field?: string } = {}): Promise<Explanation> {
  const history = await client.query(
    `SELECT decided_at, decision, op, position::text, stored_position::text, origin_topic, origin_partition, origin_offset::text, tx_id, source_ts, reason, new_values,
            old_values, field, correlation_id
       FROM trustsync.history WHERE target = $1 AND key = $2 AND ($3::timestamptz IS NULL OR decided_at <= $3)
        AND ($4::text IS NULL OR field IS NULL OR field = $4) ORDER BY id`,
    [target, key, options.at?.toISOString() ?? null, options.field ?? null],
  );
  const field = options.field ?? null;
  const pick = (values: Record<string, unknown> | null) => (values && field ? { [field]: values[field] } : values);
  let believed: Record<string, unknown> | null = null;
  for (const r of history.rows) {
    if (!['applied', 'truncated', 'review-resolved', 'repaired'].includes(r.decision)) continue;
    if (r.op === 'd' || r.op === 't') believed = null;
    else believed = { ...(believed ?? {}), ...Object.fromEntries(Object.entries(r.new_values as Record<string, unknown>).filter(([, v]) => v !== '__debezium_unavailable_value')) };
  }
  const ledger = await client.query(`SELECT position::text, deleted, changed_at FROM trustsync.key_positions WHERE target = $1 AND key = $2`, [target, key]);
  // Only databases a flow under policy writes have row state.
  const state = await client
    .query(`SELECT vector, known_values, changed_at FROM trustsync.row_state WHERE target = $1 AND key = $2`, [target, key])
    .then((r) => r.rows[0])
    .catch(() => undefined);
  return {
    target,
    key,
    at: options.at?.toISOString() ?? null,
    field,
    believed: pick(believed),
    timeline: history.rows.map((r) => ({
      decidedAt: (r.decided_at as Date).toISOString(),
      decision: r.decision,
      op: r.op,
      position: r.position,
      storedPosition: r.stored_position,
      origin: r.origin_topic ? `${r.origin_topic}/${r.origin_partition}@${r.origin_offset}` : null,
      txId: r.tx_id,
      sourceTs: r.source_ts ? (r.source_ts as Date).toISOString() : null,
      reason: r.reason,
      values: pick(r.new_values),
      oldValues: pick(r.old_values),
      field: r.field,
      correlationId: r.correlation_id,
    })),
    ledger: ledger.rows[0] ? { position: ledger.rows[0].position, deleted: ledger.rows[0].deleted, changedAt: (ledger.rows[0].changed_at as Date).toISOString() } : null,
    state: state ? { vector: state.vector, agreed: pick(state.known_values), changedAt: (state.changed_at as Date).toISOString() } : null,
  };
}

const OPS: Record<string, string> = { c: 'insert', u: 'update', d: 'delete', r: 'snapshot read', t: 'truncate' };

/** The explanation as a support person reads it. */
export function formatExplanation(x: Explanation): string {
  const lines = [`${x.target} key ${x.key}${x.field ? `, field ${x.field}` : ''}${x.at ? `, as believed at ${x.at}` : ''}`];
  if (x.timeline.length === 0) lines.push('  no decisions recorded for this key');
  for (const t of x.timeline) {
    const what = t.op ? OPS[t.op] ?? t.op : 'batch';
    const from = t.origin ? ` from ${t.origin}` : '';
    const at = t.position ? ` at ${formatRank(t.position)}` : '';
    lines.push(`  ${t.decidedAt}  ${t.decision.padEnd(19)} ${t.field ? `field ${t.field}` : `${what}${at}${from}${t.sourceTs ? ` (committed at source ${t.sourceTs})` : ''}`}`);
    if (t.reason) lines.push(`  ${' '.repeat(24)} why: ${t.reason}`);
    if (t.oldValues && t.field) lines.push(`  ${' '.repeat(24)} was: ${JSON.stringify(t.oldValues).slice(0, 300)}`);
    if (t.values) lines.push(`  ${' '.repeat(24)} values: ${JSON.stringify(t.values).slice(0, 300)}`);
  }
  lines.push(`  believed${x.at ? ' then' : ''}: ${x.believed ? JSON.stringify(x.believed).slice(0, 300) : 'no such record'}`);
  if (x.at) return lines.join('\n');
  if (x.ledger) lines.push(`  now: ${x.ledger.deleted ? 'deleted (tombstone kept)' : 'present'} at ${formatRank(x.ledger.position)}, since ${x.ledger.changedAt}`);
  else if (x.state) {
    const vector = Object.entries(x.state.vector).map(([system, p]) => `${system} ${formatRank(p)}`).join(', ');
    lines.push(`  now: version vector {${vector}}, since ${x.state.changedAt}`);
    lines.push(`       agreed by both systems: ${x.state.agreed ? JSON.stringify(x.state.agreed).slice(0, 300) : 'the record is gone'}`);
  } else lines.push('  now: never written');
  return lines.join('\n');
}
