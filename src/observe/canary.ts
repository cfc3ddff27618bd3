import { randomUUID } from 'node:crypto';
import type { TableMapping, TableName } from '../model/table.js';
import { noteRow } from '../history/history.js';
import { openSink, openSourceDatabase } from '../sink/kinds.js';
import type { Sink } from '../sink/sink.js';
import type { CanaryRecord, SourceDatabase } from '../sink/source.js';

/*
 * Canaries: synthetic records written into a canary table at the source, captured by Debezium like
 * any table, and timed when they appear at the destination — end-to-end arrival, completeness and
 * field propagation measured on the real path, not inferred from lag.
 */

export interface CanaryResult {
  sent: number;
  arrived: number;
  /** Arrived with every field as sent. */
  intact: number;
  /** Seconds from the source commit to the moment the record was seen at the destination. */
  latencies: number[];
  missing: string[];
  damaged: { id: string; field: string; sent: string; received: string | null }[];
}

/** Writes `count` canary records at the source, each in its own transaction; returns them with their commit time. */
export async function sendCanaries(source: SourceDatabase, t: TableName, count: number): Promise<(CanaryRecord & { sentAt: number })[]> {
  await source.ensureCanaryTable(t);
  const sent: (CanaryRecord & { sentAt: number })[] = [];
  for (let i = 0; i < count; i++) {
    const record = {
      id: `canary-${randomUUID()}`,
      label: `canary ${i + 1} of ${count} — ✓ ünïcode`,
      amount: (Math.floor(Math.random() * 1e6) / 100).toFixed(2),
      tags: ['canary', `n${i}`],
    };
    sent.push({ ...record, sentAt: await source.writeCanary(t, record) });
  }
  return sent;
}

/** Whether a field arrived as sent, in whatever text the destination's kind gives it back. */
function arrivedIntact(field: 'label' | 'amount' | 'tags', sent: CanaryRecord, received: string | null): boolean {
  if (received === null) return false;
  if (field === 'amount') return Number(received).toFixed(2) === sent.amount && /^-?\d+(\.\d+)?$/.test(received);
  if (field === 'tags') {
    try {
      return JSON.stringify(JSON.parse(received)) === JSON.stringify(sent.tags);
    } catch {
      return false;
    }
  }
  return received === sent.label;
}

/** Polls the destination until every canary arrived or the time is up, checking each field. */
export async function awaitCanaries(dest: Sink, t: TableName, sent: readonly (CanaryRecord & { sentAt: number })[], timeoutMs: number): Promise<CanaryResult> {
  const mapping: TableMapping = { topic: '(canary)', table: t, rename: {}, createIfMissing: false };
  const seen = new Map<string, { at: number; row: Record<string, string | null> }>();
  const deadline = Date.now() + timeoutMs;
  while (seen.size < sent.length && Date.now() < deadline) {
    const waiting = new Map(sent.filter((s) => !seen.has(s.id)).map((s) => [s.id, { id: s.id }]));
    // A table the flow has not created yet (it does with the first canary it applies) reads as no rows.
    const rows = await dest.readRows(mapping, waiting);
    const now = Date.now();
    for (const [id, row] of rows) if (row) seen.set(id, { at: now, row });
    if (seen.size < sent.length) await new Promise((r) => setTimeout(r, 50));
  }
  const result: CanaryResult = { sent: sent.length, arrived: seen.size, intact: 0, latencies: [], missing: [], damaged: [] };
  for (const s of sent) {
    const got = seen.get(s.id);
    if (!got) {
      result.missing.push(s.id);
      continue;
    }
    result.latencies.push(Math.max(0, (got.at - s.sentAt) / 1000));
    const wrong = (['label', 'amount', 'tags'] as const).filter((f) => !arrivedIntact(f, s, got.row[f] ?? null));
    const sentText = { label: s.label, amount: s.amount, tags: JSON.stringify(s.tags) };
    for (const field of wrong) result.damaged.push({ id: s.id, field, sent: sentText[field], received: got.row[field] ?? null });
    if (wrong.length === 0) result.intact++;
  }
  return result;
}

/** What a canary needs of a flow: its databases and where the canary goes (a flow's config is one). */
export interface CanaryFlow {
  flow: string;
  sourceDatabaseUrl: string | undefined;
  destinationUrl: string;
  canary: { sourceTable: TableName; table: TableName } | undefined;
}

/**
 * `trustsync canary`: sends canaries through a flow (which must be running) and reports what arrived,
 * how fast and how whole; the result is also recorded in the destination's decision history.
 */
export async function runCanary(config: CanaryFlow, count: number, timeoutMs: number): Promise<CanaryResult> {
  const canary = config.canary!;
  const options = { name: `trustsync:${config.flow}:canary`, connections: 1 };
  const source = openSourceDatabase(config.sourceDatabaseUrl!, options);
  const dest = openSink(config.destinationUrl, options);
  try {
    const sent = await sendCanaries(source, canary.sourceTable, count);
    const result = await awaitCanaries(dest, canary.table, sent, timeoutMs);
    await dest.recordDecisions(config.flow, [
      noteRow(`${canary.table.schema}.${canary.table.table}`, '(canary)', 'canary', {
        entity: `${canary.sourceTable.schema}.${canary.sourceTable.table}`,
        reason: summarizeCanary(result),
      }),
    ]);
    return result;
  } finally {
    await source.close();
    await dest.close();
  }
}

export function summarizeCanary(r: CanaryResult): string {
  const sorted = [...r.latencies].sort((a, b) => a - b);
  const q = (p: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!.toFixed(3) : '-');
  return `${r.arrived}/${r.sent} canaries arrived, ${r.intact} intact; latency p50 ${q(0.5)} s, max ${q(1)} s${r.missing.length ? `; missing ${r.missing.join(', ')}` : ''}${r.damaged.length ? `; damaged fields ${r.damaged.map((d) => `${d.id}.${d.field}`).join(', ')}` : ''}`;
}
