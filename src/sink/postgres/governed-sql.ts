/**
 * Each record's state under policy as one comparable text: its vector, the transaction the other
 * system is known to agree with, and when it last changed. The LEDGER_STATES of governed tables.
 */
export const ROW_STATES = `
SELECT key, vector::text || '|' || coalesce(known_xid::text, '') || '|' || changed_at::text AS state
FROM trustsync.row_state WHERE target = $1 AND key = ANY($2::text[])`;

/** The 32-bit transaction id, as logical decoding (and so Debezium's source.txId) reports it. */
export const CURRENT_XID = 'SELECT pg_current_xact_id()::xid::text AS xid';

/** trustsync's writes into a database, looked up by the transactions a batch of captured changes came from. */
export const FIND_OUTBOUND = `
SELECT o.key, o.xid::text AS xid, o.origin_system, o.origin_position::text AS origin_position, o.origin_tx_id::text AS origin_tx_id, o.origin_values
  FROM trustsync.outbound o
  JOIN unnest($2::text[], $3::bigint[]) AS u(key, xid) ON o.key = u.key AND o.xid = u.xid
 WHERE o.target = $1`;

/**
 * A write record: what trustsync wrote into a database, under the transaction's id ($3), so that
 * its capture coming back is known for trustsync's own (FIND_OUTBOUND). An idempotency key is
 * written once.
 */
export const RECORD_OUTBOUND = `
INSERT INTO trustsync.outbound (target, key, xid, flow, origin_system, origin_position, origin_tx_id, origin_values, fields, op, vector, idempotency_key)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`;
