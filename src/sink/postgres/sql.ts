import type { FieldType } from '../../model/change.js';
import type { TableName } from '../../model/table.js';
import { jsonText, temporalText } from '../values.js';

/** Quotes an identifier: names come from events, so none is ever pasted into SQL unquoted. */
export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** A string literal for SQL text built from names trustsync read from the catalog. */
export function quoteLiteral(text: string): string {
  return `'${text.replaceAll("'", "''")}'`;
}

export function qualified(t: TableName): string {
  return `${quoteIdent(t.schema)}.${quoteIdent(t.table)}`;
}

const SEMANTIC_TYPES: Record<string, string> = {
  'io.debezium.time.ZonedTimestamp': 'timestamptz',
  'io.debezium.time.ZonedTime': 'timetz',
  'io.debezium.time.Date': 'date',
  'io.debezium.time.Timestamp': 'timestamp',
  'io.debezium.time.MicroTimestamp': 'timestamp',
  'io.debezium.time.NanoTimestamp': 'timestamp',
  'io.debezium.time.Time': 'time',
  'io.debezium.time.MicroTime': 'time',
  'io.debezium.time.NanoTime': 'time',
  'io.debezium.time.IsoDate': 'date',
  'io.debezium.time.IsoTimestamp': 'timestamp',
  'io.debezium.time.IsoTime': 'time',
  'io.debezium.data.Json': 'jsonb',
  'io.debezium.data.Uuid': 'uuid',
  'io.debezium.data.Xml': 'xml',
  'org.apache.kafka.connect.data.Date': 'date',
  'org.apache.kafka.connect.data.Timestamp': 'timestamp',
};

const LITERAL_TYPES: Record<string, string> = {
  int8: 'smallint',
  int16: 'smallint',
  int32: 'integer',
  int64: 'bigint',
  float32: 'real',
  float64: 'double precision',
  boolean: 'boolean',
  string: 'text',
  bytes: 'bytea',
  struct: 'jsonb',
  map: 'jsonb',
  array: 'jsonb',
};

/** The PostgreSQL type a new destination column gets for a field the source describes. */
export function columnTypeFor(field: FieldType): string {
  return (field.name && SEMANTIC_TYPES[field.name]) || LITERAL_TYPES[field.type] || 'text';
}

/** Without a schema (JSON without embedded schemas) the first value seen decides. */
export function columnTypeForValue(value: unknown): string {
  if (typeof value === 'bigint') return 'bigint';
  if (typeof value === 'number') return Number.isSafeInteger(value) ? 'bigint' : 'double precision';
  if (typeof value === 'boolean') return 'boolean';
  if (Buffer.isBuffer(value)) return 'bytea';
  if (value !== null && typeof value === 'object') return 'jsonb';
  return 'text';
}

const INTEGER_WIDTH: Record<string, number> = { smallint: 2, integer: 4, bigint: 8 };

/**
 * Whether values a source field produces can be written to an existing column without loss.
 * Strings are text to PostgreSQL and cast on the way in (a bad one is that row's problem, not the flow's).
 */
export function columnAccepts(existing: string, field: FieldType): boolean {
  const actual = existing.replace(/\(.*\)/, '').trim();
  const wanted = columnTypeFor(field);
  if (field.type === 'string' || actual === wanted) return true;
  if (['text', 'character varying', 'character'].includes(actual)) return true;
  if (wanted in INTEGER_WIDTH) {
    if (actual in INTEGER_WIDTH) return INTEGER_WIDTH[actual]! >= INTEGER_WIDTH[wanted]!;
    return ['numeric', 'double precision'].includes(actual) || (actual === 'real' && wanted === 'smallint');
  }
  if (wanted === 'real') return ['double precision', 'numeric'].includes(actual);
  if (wanted === 'double precision') return actual === 'numeric';
  if (wanted === 'jsonb') return actual === 'json';
  if (wanted === 'timestamp') return actual === 'timestamp without time zone' || actual === 'timestamptz' || actual === 'timestamp with time zone';
  if (wanted === 'timestamptz') return actual === 'timestamp with time zone';
  if (wanted === 'time') return actual === 'time without time zone';
  if (wanted === 'timetz') return actual === 'time with time zone';
  return false;
}

/** A field's value as the text PostgreSQL parses for the destination column. */
export function sqlText(value: unknown, field: FieldType | undefined): string | null {
  if (value === null || value === undefined) return null;
  const temporal = temporalText(value, field);
  if (temporal !== undefined) return temporal;
  if (typeof value === 'string') return value;
  if (typeof value === 'bigint' || typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (Buffer.isBuffer(value) || value instanceof Uint8Array) return `\\x${Buffer.from(value).toString('hex')}`;
  return jsonText(value);
}

/**
 * One set-based upsert for many rows: every value travels as text in one array per column and is
 * cast to the column's type inside the database — one round trip, whatever the batch size.
 * `onlyIfAbsent` (snapshot reads) never overwrites an existing row.
 */
export function upsertStatement(table: TableName, columns: { name: string; type: string }[], keyColumns: string[], onlyIfAbsent: boolean): string {
  const names = columns.map((c) => quoteIdent(c.name));
  const casts = columns.map((c) => `u.${quoteIdent(c.name)}::${c.type}`);
  const params = columns.map((_, i) => `$${i + 1}::text[]`);
  const updates = columns.filter((c) => !keyColumns.includes(c.name)).map((c) => `${quoteIdent(c.name)} = EXCLUDED.${quoteIdent(c.name)}`);
  const conflict = `ON CONFLICT (${keyColumns.map(quoteIdent).join(', ')})`;
  return (
    `INSERT INTO ${qualified(table)} (${names.join(', ')}) ` +
    `SELECT ${casts.join(', ')} FROM unnest(${params.join(', ')}) AS u(${names.join(', ')}) ` +
    (onlyIfAbsent || updates.length === 0 ? `${conflict} DO NOTHING` : `${conflict} DO UPDATE SET ${updates.join(', ')}`)
  );
}

export function deleteStatement(table: TableName, keyColumns: { name: string; type: string }[]): string {
  const names = keyColumns.map((c) => quoteIdent(c.name));
  const params = keyColumns.map((_, i) => `$${i + 1}::text[]`);
  const match = keyColumns.map((c) => `t.${quoteIdent(c.name)} = u.${quoteIdent(c.name)}::${c.type}`).join(' AND ');
  return `DELETE FROM ${qualified(table)} AS t USING unnest(${params.join(', ')}) AS u(${names.join(', ')}) WHERE ${match}`;
}

/**
 * A row's key as text, in SQL, as trustsync writes it (ledger, history, explain, review): the JSON
 * of the key value, or a JSON array of them for a composite key. It equals the event's key text
 * where PostgreSQL's JSON of the column and Debezium's agree (integers, text, uuid).
 */
export function keyTextExpr(keyColumns: readonly string[], alias = 't'): string {
  const json = (c: string) => `to_json(${alias}.${quoteIdent(c)})::text`;
  return keyColumns.length === 1 ? json(keyColumns[0]!) : `'[' || concat_ws(',', ${keyColumns.map(json).join(', ')}) || ']'`;
}

export const LEDGER_SCHEMA = 'trustsync';

/** The truncation locks' first key ('trtr'), apart from any other use of advisory locks on the destination. */
const TRUNCATION_LOCK_CLASS = 0x74727472;

/**
 * A TRUNCATE arrives on one partition, with no key, while other partitions may be behind or ahead
 * of it. Claims of a table and its truncation are serialized by this transaction-level advisory
 * lock, shared by claims and exclusive for the truncation; it is taken before the claim's snapshot,
 * so a claim either commits before the truncation reads the ledger or sees the truncation.
 */
export function truncationLock(target: string, mode: 'shared' | 'exclusive'): string {
  return `SELECT pg_advisory_xact_lock${mode === 'shared' ? '_shared' : ''}(${TRUNCATION_LOCK_CLASS}, hashtext(${quoteLiteral(target)}))`;
}

/**
 * The ledger's state of some keys: position, and a trailing '-' for a tombstone. A repair reads it
 * when it finds a difference and again, locked, when it writes: a key whose state moved in between
 * was written by the flow meanwhile, and the repair leaves it alone (ROW_STATES is the same for
 * tables under policy).
 */
export const LEDGER_STATES = `
SELECT key, position::text || CASE WHEN deleted THEN '-' ELSE '' END AS state
FROM ${LEDGER_SCHEMA}.key_positions WHERE target = $1 AND key = ANY($2::text[])`;

/**
 * Claims each key for its incoming position, in one statement: the ledger row moves forward only
 * when the incoming position is newer, and only past the table's last applied TRUNCATE (a change
 * from before it is stale even for a key the ledger never held). Row locks on the ledger serialize
 * concurrent writers of the same key, so the guard holds inside the database even with two flows
 * writing.
 * A winner that leaves columns unchanged (TOAST placeholders, $5: their names as a JSON array, or
 * NULL) keeps in `column_positions` the position that set each one's stored value: the one held
 * before, else the key's previous position (a tombstone's too: nothing from before a delete
 * belongs to the row), else the table's TRUNCATE, else -1 (never set). Any other winner clears it.
 * Returns, per incoming key, whether it won and, when it lost, the position it found (the
 * TRUNCATE's when that is the newer one) and the table's TRUNCATE position. The position found is
 * looked up key by key, and only for losers (a few stale or repeated changes): as a join, the
 * planner chose to read the whole ledger once the batch was a few thousand keys. The lookup sees
 * the statement's snapshot, before `won`.
 */
export const CLAIM_POSITIONS = `
WITH incoming AS (
  SELECT * FROM unnest($2::text[], $3::numeric[], $4::boolean[], $5::jsonb[]) AS u(key, position, deleted, unchanged)
), truncated AS (
  SELECT (SELECT position FROM ${LEDGER_SCHEMA}.truncations WHERE target = $1) AS position
), won AS (
  INSERT INTO ${LEDGER_SCHEMA}.key_positions AS kp (target, key, position, deleted, changed_at, deleted_at, column_positions)
  SELECT $1, key, position, deleted, now(), CASE WHEN deleted THEN now() END,
    (SELECT jsonb_object_agg(c, coalesce((SELECT position FROM truncated), -1)::text) FROM jsonb_array_elements_text(unchanged) c)
  FROM incoming
  WHERE position > coalesce((SELECT position FROM truncated), -1)
  ON CONFLICT (target, key) DO UPDATE SET position = EXCLUDED.position, deleted = EXCLUDED.deleted, changed_at = EXCLUDED.changed_at, deleted_at = EXCLUDED.deleted_at,
    column_positions = CASE WHEN EXCLUDED.column_positions IS NOT NULL THEN
      (SELECT jsonb_object_agg(c, coalesce(kp.column_positions ->> c, kp.position::text)) FROM jsonb_object_keys(EXCLUDED.column_positions) c) END
  WHERE kp.position < EXCLUDED.position
  RETURNING kp.key
)
SELECT i.key, (w.key IS NOT NULL) AS won,
  CASE WHEN w.key IS NULL THEN greatest((SELECT kp.position FROM ${LEDGER_SCHEMA}.key_positions kp WHERE kp.target = $1 AND kp.key = i.key), (SELECT position FROM truncated))::text END AS prior,
  CASE WHEN w.key IS NULL THEN (SELECT position FROM truncated)::text END AS truncated
FROM incoming i LEFT JOIN won w ON w.key = i.key`;

/**
 * The held column positions of live keys (column → position), read after a batch's claim, locked:
 * what a late change may fill (unchanged-columns.ts).
 */
export const HELD_COLUMN_POSITIONS = `
SELECT key, position::text AS position, column_positions AS held FROM ${LEDGER_SCHEMA}.key_positions
WHERE target = $1 AND key = ANY($2::text[]) AND NOT deleted AND column_positions IS NOT NULL ORDER BY key FOR UPDATE`;

/** Stores keys' held column positions after some were filled ($2 keys, $3 their positions as JSON). */
export const SET_COLUMN_POSITIONS = `
UPDATE ${LEDGER_SCHEMA}.key_positions kp SET column_positions = u.held
FROM unnest($2::text[], $3::jsonb[]) AS u(key, held) WHERE kp.target = $1 AND kp.key = u.key`;

/** Sets some columns of existing rows, matched by key: one statement for many rows, values as text arrays. */
export function fillStatement(table: TableName, keyColumns: { name: string; type: string }[], columns: { name: string; type: string }[]): string {
  const all = [...keyColumns, ...columns];
  const params = all.map((_, i) => `$${i + 1}::text[]`);
  const set = columns.map((c) => `${quoteIdent(c.name)} = u.${quoteIdent(c.name)}::${c.type}`).join(', ');
  const match = keyColumns.map((c) => `t.${quoteIdent(c.name)} = u.${quoteIdent(c.name)}::${c.type}`).join(' AND ');
  return `UPDATE ${qualified(table)} AS t SET ${set} FROM unnest(${params.join(', ')}) AS u(${all.map((c) => quoteIdent(c.name)).join(', ')}) WHERE ${match}`;
}
