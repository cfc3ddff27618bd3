import type { Connection } from 'mariadb';
import type { HistoryRow } from '../../model/history-row.js';
import { jsonText } from '../values.js';
import { keyHash, placeholders } from './sql.js';

/*
 * trustsync.history (migrations/0001) is the append-only record of every decision, beside the data.
 * Rows about a batch are written in the batch's own transaction: the history never tells of a write
 * that did not happen, and no write happens without its history.
 */

const COLUMNS = [
  'flow',
  'target',
  'entity',
  'key_hash',
  '`key`',
  'op',
  'decision',
  'reason',
  'position',
  'stored_position',
  'origin_topic',
  'origin_partition',
  'origin_offset',
  'tx_id',
  'source_ts',
  'capture_ts',
  'new_values',
  'fields',
  'field',
  'old_values',
  'correlation_id',
  'idempotency_key',
];

/** Epoch milliseconds (a fraction for microseconds) as DATETIME(6) text in UTC. */
export function utcFromMs(ms: number | null): string | null {
  if (ms === null) return null;
  const micros = Math.round(ms * 1000);
  const whole = Math.floor(micros / 1000);
  return `${new Date(whole).toISOString().slice(0, 23).replace('T', ' ')}${String(micros - whole * 1000).padStart(3, '0')}`;
}

/** utcFromMs keeping its last answer: a batch's changes often share one time. */
function lastKept(): (ms: number | null) => string | null {
  let lastMs: number | null = null;
  let last: string | null = null;
  return (ms) => (ms === lastMs ? last : ((lastMs = ms), (last = utcFromMs(ms))));
}
const sourceTs = lastKept();
const captureTs = lastKept();

const json = (v: unknown) => (v === null || v === undefined ? null : jsonText(v));

function values(flow: string, r: HistoryRow): unknown[] {
  return [
    flow,
    r.target,
    r.entity,
    keyHash(r.key),
    r.key,
    r.op,
    r.decision,
    r.reason,
    r.position,
    r.storedPosition,
    r.origin?.topic ?? null,
    r.origin?.partition ?? null,
    r.origin?.offset ?? null,
    r.txId,
    sourceTs(r.sourceTsMs),
    captureTs(r.captureTsMs),
    json(r.newValues),
    json(r.fields),
    r.field ?? null,
    json(r.oldValues),
    r.correlationId ?? null,
    r.idempotencyKey ?? null,
  ];
}

/**
 * Writes history rows on a connection inside a transaction. With `batchId`, none when an earlier
 * attempt of the batch committed them (its mark is on record).
 */
export async function insertHistory(conn: Connection, flow: string, rows: readonly HistoryRow[], batchId?: string): Promise<void> {
  if (rows.length === 0) return;
  if (batchId !== undefined && Number((await conn.query(MARK_BATCH, [batchId, flow])).affectedRows) === 0) return;
  // MariaDB's bulk protocol: one statement, the rows as binary parameters, no text escaping.
  await conn.batch(
    `INSERT INTO trustsync.history (${COLUMNS.join(', ')}) VALUES ${placeholders(COLUMNS.length)}`,
    rows.map((r) => values(flow, r)),
  );
}

/** A batch's mark; it inserts nothing when an earlier attempt of the batch committed (see BatchAudit.batchId). */
const MARK_BATCH = 'INSERT IGNORE INTO trustsync.batch_marks (batch_id, flow) VALUES (?, ?)';
/** Marks older than an hour: no batch is still being attempted that long. */
export const PURGE_BATCH_MARKS = 'DELETE FROM trustsync.batch_marks WHERE marked_at < NOW(6) - INTERVAL 1 HOUR';
