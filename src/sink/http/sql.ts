import { LEDGER_SCHEMA } from '../postgres/sql.js';

/** Advisory locks of the keys a batch sends: class 'tsht', then the key's hash. Two members never send one key at once. */
const KEY_LOCK_CLASS = 0x74736874;

/** Takes the session's locks of a batch's keys ($1 target, $2 keys), in key order so two batches never wait on each other in a cycle. */
export const LOCK_KEYS = `SELECT pg_advisory_lock(${KEY_LOCK_CLASS}, hashtext($1 || ' ' || k)) FROM unnest($2::text[]) k ORDER BY k`;

export const UNLOCK_KEYS = 'SELECT pg_advisory_unlock_all()';

/** Per key: the claimed position (the API acknowledged it), and the newest sent, whether acknowledged or not, with its request. */
export const KEY_GUARDS = `
SELECT k AS key, kp.position::text AS claimed, sp.position::text AS sent, sp.request
FROM unnest($2::text[]) k
LEFT JOIN ${LEDGER_SCHEMA}.key_positions kp ON kp.target = $1 AND kp.key = k
LEFT JOIN ${LEDGER_SCHEMA}.sent_positions sp ON sp.target = $1 AND sp.key = k
WHERE kp.key IS NOT NULL OR sp.key IS NOT NULL`;

/** Records that keys' changes at these positions are about to be sent ($2 keys, $3 positions, $4 requests); committed before they go out. */
export const MARK_SENT = `
INSERT INTO ${LEDGER_SCHEMA}.sent_positions AS sp (target, key, position, request)
SELECT $1, k, p, r FROM unnest($2::text[], $3::numeric[], $4::jsonb[]) AS u(k, p, r)
ON CONFLICT (target, key) DO UPDATE SET position = EXCLUDED.position, request = EXCLUDED.request, sent_at = now()
WHERE sp.position < EXCLUDED.position`;

/** Marks of keys now claimed at or past them: the ledger knows as much. */
export const CLEAR_SENT = `
DELETE FROM ${LEDGER_SCHEMA}.sent_positions sp USING unnest($2::text[], $3::numeric[]) AS c(key, position)
WHERE sp.target = $1 AND sp.key = c.key AND sp.position <= c.position`;
