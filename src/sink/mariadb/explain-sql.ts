import type { Pool, PoolConnection } from 'mariadb';
import { TABLE_KEY } from '../../model/history-row.js';
import { BELIEF_DECISIONS, explanationOf, foldBelief, type Explanation, type HistoryRecord } from '../../history/explain.js';
import { keyHash } from './sql.js';
import { utcFromMs } from './history-sql.js';

type Db = Pool | PoolConnection;

/** DATETIME(6) text of the sessions (UTC) as ISO text. */
export const isoFromUtc = (s: string | Date): string => (s instanceof Date ? s.toISOString() : new Date(`${s.replace(' ', 'T')}Z`).toISOString());
const parsed = (v: unknown): Record<string, unknown> | null =>
  v === null || v === undefined ? null : typeof v === 'string' ? JSON.parse(v) : (v as Record<string, unknown>);
const BELIEF = [...BELIEF_DECISIONS];
const inList = (n: number) => Array.from({ length: n }, () => '?').join(', ');

/** A record's decisions and its table's TRUNCATEs, which empty every record of the table. */
const OF_KEY_OR_TABLE = `(key_hash = ? OR (key_hash = ? AND decision = 'truncated'))`;

async function latestSnapshot(db: Db, target: string, key: string, at?: Date) {
  const rows: { hid: string; decided_at: string; believed: unknown }[] = await db.query(
    `SELECT CAST(history_id AS CHAR) AS hid, decided_at, believed FROM trustsync.entity_snapshots
      WHERE target = ? AND key_hash = ? AND (? IS NULL OR decided_at <= ?) ORDER BY history_id DESC LIMIT 1`,
    [target, keyHash(key), at ? utcFromMs(at.getTime()) : null, at ? utcFromMs(at.getTime()) : null],
  );
  const r = rows[0];
  return r ? { historyId: r.hid, decidedAt: isoFromUtc(r.decided_at), believed: parsed(r.believed) } : null;
}

/** The story of one destination record: every decision about its key, oldest first, and where it stands now. */
export async function explainKey(db: Db, target: string, key: string, options: { at?: Date; field?: string; all?: boolean } = {}): Promise<Explanation> {
  const at = options.at ? utcFromMs(options.at.getTime()) : null;
  const field = options.field ?? null;
  const history: Record<string, unknown>[] = await db.query(
    `SELECT CAST(id AS CHAR) AS hid, \`key\`, decided_at, decision, op, CAST(position AS CHAR) AS position, CAST(stored_position AS CHAR) AS stored_position,
            origin_topic, origin_partition, CAST(origin_offset AS CHAR) AS origin_offset, tx_id, source_ts, reason, new_values, old_values, field, correlation_id
       FROM trustsync.history WHERE target = ? AND ${OF_KEY_OR_TABLE} AND (? IS NULL OR decided_at <= ?) AND (? IS NULL OR field IS NULL OR field = ?) ORDER BY id`,
    [target, keyHash(key), keyHash(TABLE_KEY), at, at, field, field],
  );
  const ledger: { position: string; deleted: number; changed_at: string }[] = await db.query(
    `SELECT CAST(position AS CHAR) AS position, deleted, changed_at FROM trustsync.key_positions WHERE target = ? AND key_hash = ? AND position >= 0`,
    [target, keyHash(key)],
  );
  return explanationOf(target, key, options, {
    decisions: history.map((r) => ({
      id: r.hid as string,
      key: r.key as string,
      decidedAt: isoFromUtc(r.decided_at as string),
      decision: r.decision as string,
      op: r.op as string | null,
      position: r.position as string | null,
      storedPosition: r.stored_position as string | null,
      origin: r.origin_topic ? `${r.origin_topic as string}/${r.origin_partition as number}@${r.origin_offset as string}` : null,
      txId: r.tx_id as string | null,
      sourceTs: r.source_ts ? isoFromUtc(r.source_ts as string) : null,
      reason: r.reason as string | null,
      newValues: parsed(r.new_values),
      oldValues: parsed(r.old_values),
      field: r.field as string | null,
      correlationId: r.correlation_id as string | null,
    })),
    snapshot: await latestSnapshot(db, target, key, options.at),
    ledger: ledger[0] ? { position: ledger[0].position, deleted: Boolean(ledger[0].deleted), changedAt: isoFromUtc(ledger[0].changed_at) } : null,
    state: null,
  });
}

/**
 * Snapshots of what trustsync believes each record holds, so a long history, or one partly past its
 * retention, need not be replayed from its beginning. A key gets one when `minRows` belief-changing
 * decisions have piled up since its last snapshot (all of them up to `upTo`, when given: before a purge).
 */
export async function takeSnapshots(db: Pool, flow: string, options: { minRows: number; upTo?: Date }): Promise<number> {
  const upTo = options.upTo ? utcFromMs(options.upTo.getTime()) : null;
  const due: { target: string; key: string; last: string }[] = await db.query(
    `SELECT h.target, MIN(h.\`key\`) AS \`key\`, CAST(MAX(h.id) AS CHAR) AS last FROM trustsync.history h
       LEFT JOIN (SELECT target, key_hash, MAX(history_id) AS last FROM trustsync.entity_snapshots GROUP BY target, key_hash) s
         ON s.target = h.target AND s.key_hash = h.key_hash
      WHERE h.flow = ? AND h.decision IN (${inList(BELIEF.length)}) AND h.id > coalesce(s.last, 0) AND (? IS NULL OR h.decided_at < ?)
      GROUP BY h.target, h.key_hash HAVING count(*) >= ?`,
    [flow, ...BELIEF, upTo, upTo, options.minRows],
  );
  let taken = 0;
  for (const { target, key, last } of due) {
    // A TRUNCATE is every record's decision: records whose snapshot it follows get one that holds it.
    const keys =
      key === TABLE_KEY
        ? (
            (await db.query(
              'SELECT MIN(`key`) AS `key` FROM trustsync.entity_snapshots WHERE target = ? AND key_hash <> ? GROUP BY key_hash HAVING MAX(history_id) < ?',
              [target, keyHash(TABLE_KEY), last],
            )) as { key: string }[]
          ).map((r) => r.key)
        : [key];
    for (const k of keys) taken += await snapshotRecord(db, target, k, upTo);
  }
  return taken;
}

async function snapshotRecord(db: Pool, target: string, key: string, upTo: string | null): Promise<number> {
  const snapshot = await latestSnapshot(db, target, key);
  const rows: (HistoryRecord & { hid: string; decided_at: string })[] = await db.query(
    `SELECT CAST(id AS CHAR) AS hid, decided_at, decision, op, new_values FROM trustsync.history
      WHERE target = ? AND ${OF_KEY_OR_TABLE} AND id > ? AND decision IN (${inList(BELIEF.length)}) AND (? IS NULL OR decided_at < ?) ORDER BY id`,
    [target, keyHash(key), keyHash(TABLE_KEY), snapshot?.historyId ?? '0', ...BELIEF, upTo, upTo],
  );
  const last = rows.at(-1);
  if (!last) return 0;
  const believed = foldBelief(
    snapshot?.believed ?? null,
    rows.map((r) => ({ ...r, new_values: parsed(r.new_values) })),
  );
  await db.query('INSERT IGNORE INTO trustsync.entity_snapshots (target, key_hash, `key`, history_id, decided_at, believed) VALUES (?, ?, ?, ?, ?, ?)', [
    target,
    keyHash(key),
    key,
    last.hid,
    last.decided_at,
    JSON.stringify(believed),
  ]);
  return 1;
}
