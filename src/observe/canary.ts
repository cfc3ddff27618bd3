import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { recordHistory } from '../sink/postgres/postgres-sink.js';
import { qualified } from '../sink/postgres/sql.js';
import type { TableName } from '../model/table.js';
import { noteRow } from '../history/history.js';

/**
 * Canaries: synthetic records written into a canary table at the source, captured by Debezium like
 * any table, and timed when they appear at the destination — end-to-end arrival, completeness and
 * field propagation measured on the real path, not inferred from lag.
 */
export function canaryTableSql(t: TableName): string {
  return `CREATE SCHEMA IF NOT EXISTS "${t.schema.replaceAll('"', '""')}";
CREATE TABLE IF NOT EXISTS ${qualified(t)} (
  id       text PRIMARY KEY,
  sent_at  timestamptz NOT NULL,
  label    text NOT NULL,
  amount   numeric(12,2) NOT NULL,
  tags     jsonb NOT NULL
);`;
}

export interface CanaryRecord {
  id: string;
  label: string;
  amount: string;
  tags: string[];
}

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
export async function sendCanaries(source: pg.Client | pg.Pool, t: TableName, count: number): Promise<(CanaryRecord & { sentAt: number })[]> {
  const sent: (CanaryRecord & { sentAt: number })[] = [];
  for (let i = 0; i < count; i++) {
    const id = `canary-${randomUUID()}`;
    const record = {
      id,
      label: `canary ${i + 1} of ${count} — ✓ ünïcode`,
      amount: (Math.floor(Math.random() * 1e6) / 100).toFixed(2),
      tags: ['canary', `n${i}`],
    };
    const { rows } = await source.query<{ sent_at: Date }>(
      `INSERT INTO ${qualified(t)} (id, sent_at, label, amount, tags) VALUES ($1, clock_timestamp(), $2, $3, $4) RETURNING sent_at`,
      [record.id, record.label, record.amount, JSON.stringify(record.tags)],
    );
    sent.push({ ...record, sentAt: rows[0]!.sent_at.getTime() });
  }
  return sent;
}

/** Polls the destination until every canary arrived or the time is up, checking each field. */
export async function awaitCanaries(
  dest: pg.Client | pg.Pool,
  t: TableName,
  sent: readonly (CanaryRecord & { sentAt: number })[],
  timeoutMs: number,
): Promise<CanaryResult> {
  const seen = new Map<string, { at: number; row: Record<string, string | null> }>();
  const deadline = Date.now() + timeoutMs;
  while (seen.size < sent.length && Date.now() < deadline) {
    const waiting = sent.filter((s) => !seen.has(s.id)).map((s) => s.id);
    const { rows } = await dest
      .query<Record<string, string | null>>(`SELECT id, label, amount::text AS amount, tags::text AS tags FROM ${qualified(t)} WHERE id = ANY($1::text[])`, [
        waiting,
      ])
      .catch((err: { code?: string }) => {
        // The flow creates the destination table with the first canary it applies.
        if (err.code === '42P01') return { rows: [] };
        throw err;
      });
    const now = Date.now();
    for (const r of rows) seen.set(r.id!, { at: now, row: r });
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
    const expected: Record<string, string> = { label: s.label, amount: s.amount, tags: JSON.stringify(s.tags).replaceAll('","', '", "') };
    const wrong = Object.entries(expected).filter(([f, v]) => got.row[f] !== v);
    for (const [field, v] of wrong) result.damaged.push({ id: s.id, field, sent: v, received: got.row[field] ?? null });
    if (wrong.length === 0) result.intact++;
  }
  return result;
}

/**
 * `trustsync canary`: sends canaries through a flow (which must be running) and reports what arrived,
 * how fast and how whole; the result is also recorded in the destination's decision history.
 */
/** What a canary needs of a flow: its databases and where the canary goes (a flow's config is one). */
export interface CanaryFlow {
  flow: string;
  sourceDatabaseUrl: string | undefined;
  destinationUrl: string;
  canary: { sourceTable: TableName; table: TableName } | undefined;
}

export async function runCanary(config: CanaryFlow, count: number, timeoutMs: number): Promise<CanaryResult> {
  const canary = config.canary!;
  const source = new pg.Pool({ connectionString: config.sourceDatabaseUrl!, max: 1, application_name: `trustsync:${config.flow}:canary` });
  const dest = new pg.Pool({ connectionString: config.destinationUrl, max: 1, application_name: `trustsync:${config.flow}:canary` });
  try {
    await source.query(canaryTableSql(canary.sourceTable));
    const sent = await sendCanaries(source, canary.sourceTable, count);
    const result = await awaitCanaries(dest, canary.table, sent, timeoutMs);
    await recordHistory(dest, config.flow, [
      noteRow(`${canary.table.schema}.${canary.table.table}`, '(canary)', 'canary', {
        entity: `${canary.sourceTable.schema}.${canary.sourceTable.table}`,
        reason: summarizeCanary(result),
      }),
    ]);
    return result;
  } finally {
    await source.end();
    await dest.end();
  }
}

export function summarizeCanary(r: CanaryResult): string {
  const sorted = [...r.latencies].sort((a, b) => a - b);
  const q = (p: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!.toFixed(3) : '-');
  return `${r.arrived}/${r.sent} canaries arrived, ${r.intact} intact; latency p50 ${q(0.5)} s, max ${q(1)} s${r.missing.length ? `; missing ${r.missing.join(', ')}` : ''}${r.damaged.length ? `; damaged fields ${r.damaged.map((d) => `${d.id}.${d.field}`).join(', ')}` : ''}`;
}
