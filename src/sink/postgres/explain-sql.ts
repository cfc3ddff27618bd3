import type pg from 'pg';
import { TABLE_KEY } from '../../model/history-row.js';
import { BELIEF_DECISIONS, explanationOf, foldBelief, type Explanation, type HistoryRecord } from '../../history/explain.js';

/** A record's decisions ($2: its key) and its table's TRUNCATEs, which empty every record of the table. */
const OF_KEY_OR_TABLE = `(key = $2 OR (key = '${TABLE_KEY}' AND decision = 'truncated'))`;

async function latestSnapshot(
  client: pg.Client | pg.Pool,
  target: string,
  key: string,
  at?: Date,
): Promise<{ historyId: string; decidedAt: string; believed: Record<string, unknown> | null } | null> {
  const { rows } = await client.query(
    // Aliases other than the column names: ORDER BY would otherwise sort the text, and 99 > 100.
    `SELECT history_id::text AS hid, decided_at, believed FROM trustsync.entity_snapshots
      WHERE target = $1 AND key = $2 AND ($3::timestamptz IS NULL OR decided_at <= $3) ORDER BY history_id DESC LIMIT 1`,
    [target, key, at?.toISOString() ?? null],
  );
  const r = rows[0];
  return r ? { historyId: r.hid, decidedAt: (r.decided_at as Date).toISOString(), believed: r.believed } : null;
}

/**
 * Snapshots of what trustsync believes each record holds, so a long history, or one partly past its
 * retention, need not be replayed from its beginning. A key gets one when `minRows` belief-changing
 * decisions have piled up since its last snapshot (all of them up to `upTo`, when given: before a purge).
 */
export async function takeSnapshots(client: pg.Client | pg.Pool | pg.PoolClient, flow: string, options: { minRows: number; upTo?: Date }): Promise<number> {
  const upTo = options.upTo?.toISOString() ?? null;
  const due = await client.query<{ target: string; key: string; last: string }>(
    `SELECT h.target, h.key, max(h.id)::text AS last FROM trustsync.history h
       LEFT JOIN LATERAL (SELECT max(history_id) AS last FROM trustsync.entity_snapshots s WHERE s.target = h.target AND s.key = h.key) s ON true
      WHERE h.flow = $1 AND h.decision = ANY($2::text[]) AND h.id > coalesce(s.last, 0) AND ($3::timestamptz IS NULL OR h.decided_at < $3)
      GROUP BY h.target, h.key HAVING count(*) >= $4`,
    [flow, [...BELIEF_DECISIONS], upTo, options.minRows],
  );
  let taken = 0;
  for (const { target, key, last } of due.rows) {
    // A TRUNCATE is every record's decision: records whose snapshot it follows get one that holds it,
    // before the TRUNCATE itself may go past the retention. (The table's key has no snapshot itself.)
    const keys =
      key === TABLE_KEY
        ? (
            await client.query<{ key: string }>(
              'SELECT key FROM trustsync.entity_snapshots WHERE target = $1 AND key <> $2 GROUP BY key HAVING max(history_id) < $3',
              [target, TABLE_KEY, last],
            )
          ).rows.map((r) => r.key)
        : [key];
    for (const k of keys) taken += await snapshotRecord(client, target, k, upTo);
  }
  return taken;
}

/** Snapshots what is believed of one record from its latest snapshot and the decisions since (up to `upTo`). */
async function snapshotRecord(client: pg.Client | pg.Pool | pg.PoolClient, target: string, key: string, upTo: string | null): Promise<number> {
  const snapshot = await latestSnapshot(client as pg.Pool, target, key);
  const { rows } = await client.query<HistoryRecord & { hid: string; decided_at: Date }>(
    `SELECT id::text AS hid, decided_at, decision, op, new_values FROM trustsync.history
      WHERE target = $1 AND ${OF_KEY_OR_TABLE} AND id > $3 AND decision = ANY($4::text[]) AND ($5::timestamptz IS NULL OR decided_at < $5) ORDER BY id`,
    [target, key, snapshot?.historyId ?? '0', [...BELIEF_DECISIONS], upTo],
  );
  const last = rows.at(-1);
  if (!last) return 0;
  await client.query(
    'INSERT INTO trustsync.entity_snapshots (target, key, history_id, decided_at, believed) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING',
    [target, key, last.hid, last.decided_at, JSON.stringify(foldBelief(snapshot?.believed ?? null, rows))],
  );
  return 1;
}

/** The story of one destination record: every decision about its key, oldest first, and where it stands now. */
export async function explainKey(
  client: pg.Client | pg.Pool,
  target: string,
  key: string,
  options: { at?: Date; field?: string; all?: boolean } = {},
): Promise<Explanation> {
  const history = await client.query(
    `SELECT id::text AS hid, key, decided_at, decision, op, position::text, stored_position::text, origin_topic, origin_partition, origin_offset::text, tx_id, source_ts, reason, new_values,
            old_values, field, correlation_id
       FROM trustsync.history WHERE target = $1 AND ${OF_KEY_OR_TABLE} AND ($3::timestamptz IS NULL OR decided_at <= $3)
        AND ($4::text IS NULL OR field IS NULL OR field = $4) ORDER BY id`,
    [target, key, options.at?.toISOString() ?? null, options.field ?? null],
  );
  const ledger = await client.query(`SELECT position::text, deleted, changed_at FROM trustsync.key_positions WHERE target = $1 AND key = $2`, [target, key]);
  // Only databases a flow under policy writes have row state.
  const state = await client
    .query(`SELECT vector, known_values, changed_at FROM trustsync.row_state WHERE target = $1 AND key = $2`, [target, key])
    .then((r) => r.rows[0])
    .catch(() => undefined);
  return explanationOf(target, key, options, {
    decisions: history.rows.map((r) => ({
      id: r.hid,
      key: r.key,
      decidedAt: (r.decided_at as Date).toISOString(),
      decision: r.decision,
      op: r.op,
      position: r.position,
      storedPosition: r.stored_position,
      origin: r.origin_topic ? `${r.origin_topic}/${r.origin_partition}@${r.origin_offset}` : null,
      txId: r.tx_id,
      sourceTs: r.source_ts ? (r.source_ts as Date).toISOString() : null,
      reason: r.reason,
      newValues: r.new_values,
      oldValues: r.old_values,
      field: r.field,
      correlationId: r.correlation_id,
    })),
    snapshot: await latestSnapshot(client, target, key, options.at),
    ledger: ledger.rows[0]
      ? { position: ledger.rows[0].position, deleted: ledger.rows[0].deleted, changedAt: (ledger.rows[0].changed_at as Date).toISOString() }
      : null,
    state: state ? { vector: state.vector, agreed: state.known_values, changedAt: (state.changed_at as Date).toISOString() } : null,
  });
}
