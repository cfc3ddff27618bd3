import { createHash } from 'node:crypto';
import type { FieldType } from '../../model/change.js';
import type { TableName } from '../../model/table.js';
import { jsonText, temporalText } from '../values.js';

/** Quotes an identifier: names come from events, so none is ever pasted into SQL unquoted. */
export function quoteIdent(name: string): string {
  return `\`${name.replaceAll('`', '``')}\``;
}

/** A destination table: its schema is a MariaDB database. */
export function qualified(t: TableName): string {
  return `${quoteIdent(t.schema)}.${quoteIdent(t.table)}`;
}

const recentHashes = new Map<string, Buffer>();

/**
 * How the ledger and the history find a key: any text, by its SHA-256 (an index cannot hold long
 * text). A batch asks for each key's several times (claim, rows, history): recent ones are kept.
 */
export function keyHash(keyText: string): Buffer {
  let hash = recentHashes.get(keyText);
  if (!hash) {
    if (recentHashes.size >= 100_000) recentHashes.clear();
    recentHashes.set(keyText, (hash = createHash('sha256').update(keyText).digest()));
  }
  return hash;
}

const SEMANTIC_TYPES: Record<string, string> = {
  // MariaDB's DATETIME has no zone: trustsync's sessions run in UTC and write every instant in UTC.
  'io.debezium.time.ZonedTimestamp': 'DATETIME(6)',
  'io.debezium.time.ZonedTime': 'VARCHAR(32)',
  'io.debezium.time.Date': 'DATE',
  'io.debezium.time.Timestamp': 'DATETIME(6)',
  'io.debezium.time.MicroTimestamp': 'DATETIME(6)',
  'io.debezium.time.NanoTimestamp': 'DATETIME(6)',
  'io.debezium.time.Time': 'TIME(6)',
  'io.debezium.time.MicroTime': 'TIME(6)',
  'io.debezium.time.NanoTime': 'TIME(6)',
  'io.debezium.time.IsoDate': 'DATE',
  'io.debezium.time.IsoTimestamp': 'DATETIME(6)',
  'io.debezium.time.IsoTime': 'TIME(6)',
  'io.debezium.data.Json': 'JSON',
  'io.debezium.data.Uuid': 'CHAR(36)',
  'io.debezium.data.Xml': 'LONGTEXT',
  'org.apache.kafka.connect.data.Date': 'DATE',
  'org.apache.kafka.connect.data.Timestamp': 'DATETIME(6)',
};

const LITERAL_TYPES: Record<string, string> = {
  int8: 'SMALLINT',
  int16: 'SMALLINT',
  int32: 'INT',
  int64: 'BIGINT',
  float32: 'FLOAT',
  float64: 'DOUBLE',
  boolean: 'BOOLEAN',
  string: 'LONGTEXT',
  bytes: 'LONGBLOB',
  struct: 'JSON',
  map: 'JSON',
  array: 'JSON',
};

/**
 * The MariaDB type a new column gets for a field the source describes. A key column cannot be
 * unbounded text: its share of InnoDB's 3072-byte index (768 four-byte characters) is its length.
 */
export function columnTypeFor(field: FieldType, keyColumns = 0): string {
  const type = (field.name && SEMANTIC_TYPES[field.name]) || LITERAL_TYPES[field.type] || 'LONGTEXT';
  if (keyColumns === 0) return type;
  const chars = Math.floor(768 / keyColumns);
  return type === 'LONGTEXT' ? `VARCHAR(${chars})` : type === 'LONGBLOB' ? `VARBINARY(${chars * 4})` : type;
}

/** Without a schema (JSON without embedded schemas) the first value seen decides. */
export function columnTypeForValue(value: unknown, keyColumns = 0): string {
  if (typeof value === 'bigint') return 'BIGINT';
  if (typeof value === 'number') return Number.isSafeInteger(value) ? 'BIGINT' : 'DOUBLE';
  if (typeof value === 'boolean') return 'BOOLEAN';
  if (Buffer.isBuffer(value)) return keyColumns ? `VARBINARY(${Math.floor(3072 / keyColumns)})` : 'LONGBLOB';
  if (value !== null && typeof value === 'object') return 'JSON';
  return keyColumns ? `VARCHAR(${Math.floor(768 / keyColumns)})` : 'LONGTEXT';
}

const INTEGER_WIDTH: Record<string, number> = { tinyint: 1, smallint: 2, mediumint: 3, int: 4, integer: 4, bigint: 8 };
const TEXT_TYPES = new Set(['char', 'varchar', 'tinytext', 'text', 'mediumtext', 'longtext']);
const BINARY_TYPES = new Set(['binary', 'varbinary', 'tinyblob', 'blob', 'mediumblob', 'longblob']);

/**
 * Whether values a source field produces can be written to an existing column (information_schema's
 * COLUMN_TYPE) without loss. Strings are cast by the server on the way in, strictly: a bad one is
 * that row's problem, not the flow's.
 */
export function columnAccepts(existing: string, field: FieldType): boolean {
  const actual = existing
    .toLowerCase()
    .replace(/\(.*\)/, '')
    .replace(/ unsigned| zerofill/g, '')
    .trim();
  const wanted = columnTypeFor(field)
    .toLowerCase()
    .replace(/\(.*\)/, '');
  if (field.type === 'string' || actual === wanted || TEXT_TYPES.has(actual)) return true;
  if (wanted in INTEGER_WIDTH) {
    if (actual in INTEGER_WIDTH) return INTEGER_WIDTH[actual]! >= INTEGER_WIDTH[wanted]!;
    return ['decimal', 'double'].includes(actual) || (actual === 'float' && wanted === 'smallint');
  }
  if (wanted === 'boolean') return actual in INTEGER_WIDTH || actual === 'bit';
  if (wanted === 'float') return ['double', 'decimal'].includes(actual);
  if (wanted === 'double') return actual === 'decimal';
  if (wanted === 'longblob') return BINARY_TYPES.has(actual);
  if (wanted === 'json') return actual === 'longtext';
  if (wanted === 'datetime') return actual === 'timestamp';
  return false;
}

/**
 * An instant as DATETIME text in UTC: Debezium sends timestamptz as ISO text with its zone (`Z`, or
 * an offset), and MariaDB would drop the zone rather than convert.
 */
export function utcDateTime(text: string): string {
  const m = /^(\d{4,}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})(\.\d{1,9})?(Z|[+-]\d{2}:?\d{2})$/.exec(text);
  if (!m) return text; // not an instant with a zone: the server judges it
  const fraction = (m[3] ?? '.').slice(1).padEnd(6, '0').slice(0, 6);
  if (m[4] === 'Z') return `${m[1]} ${m[2]}.${fraction}`;
  const ms = Date.parse(`${m[1]}T${m[2]}${m[4]}`);
  if (Number.isNaN(ms)) return text;
  return `${new Date(ms).toISOString().slice(0, 19).replace('T', ' ')}.${fraction}`;
}

/**
 * A field's value as a parameter for a column of this MariaDB type: bytes stay bytes, booleans are
 * 1/0 for a numeric column, instants go to UTC, structures to JSON; the rest travels as text and
 * the server casts it, strictly.
 */
export function sqlValue(value: unknown, field: FieldType | undefined, columnType: string): string | number | Buffer | null {
  if (value === null || value === undefined) return null;
  const temporal = temporalText(value, field);
  if (temporal !== undefined) return temporal;
  if (Buffer.isBuffer(value)) return value;
  if (value instanceof Uint8Array) return Buffer.from(value);
  const type = columnType.toLowerCase();
  if (typeof value === 'boolean') return /int|bit|bool|decimal|double|float/.test(type) ? (value ? 1 : 0) : String(value);
  if (typeof value === 'string') return /^(datetime|timestamp)/.test(type) ? utcDateTime(value) : value;
  if (typeof value === 'number' || typeof value === 'bigint') return String(value);
  return jsonText(value);
}

/** `(?, ?, …)` for n values. */
export function placeholders(n: number): string {
  return `(${Array.from({ length: n }, () => '?').join(', ')})`;
}

/**
 * An upsert of `rows` rows, `INSERT … VALUES (…), (…) ON DUPLICATE KEY UPDATE` (the sink sends one
 * row's statement through the bulk protocol with every row's parameters). `onlyIfAbsent` (snapshot reads) never overwrites an existing row (a
 * no-op update, not INSERT IGNORE, which would also turn bad values into warnings).
 */
export function upsertStatement(table: TableName, columns: readonly string[], keyColumns: readonly string[], rows: number, onlyIfAbsent: boolean): string {
  const names = columns.map(quoteIdent);
  const values = Array.from({ length: rows }, () => placeholders(columns.length)).join(', ');
  const updates = columns.filter((c) => !keyColumns.includes(c)).map((c) => `${quoteIdent(c)} = VALUES(${quoteIdent(c)})`);
  const noop = `${quoteIdent(keyColumns[0]!)} = ${quoteIdent(keyColumns[0]!)}`;
  return `INSERT INTO ${qualified(table)} (${names.join(', ')}) VALUES ${values} ON DUPLICATE KEY UPDATE ${onlyIfAbsent || updates.length === 0 ? noop : updates.join(', ')}`;
}

/** Rows matched by key, `(k1, k2) IN ((?, ?), …)`. */
export function keyMatch(keyColumns: readonly string[], rows: number): string {
  const tuple = keyColumns.length === 1 ? quoteIdent(keyColumns[0]!) : `(${keyColumns.map(quoteIdent).join(', ')})`;
  const one = keyColumns.length === 1 ? '?' : placeholders(keyColumns.length);
  return `${tuple} IN (${Array.from({ length: rows }, () => one).join(', ')})`;
}

export const LEDGER = 'trustsync.key_positions';

/**
 * Makes sure the ledger has a row for each key, taking its lock: a key it never held gets a
 * placeholder at position -1 (older than any change), so concurrent writers of a new key queue on
 * one row instead of both deciding they are first. Sent for a batch's keys at once, in bulk, in
 * index order, so two writers never wait for each other crosswise.
 */
export const LEDGER_LOCK = `INSERT INTO ${LEDGER} (target, key_hash, \`key\`, position, deleted, changed_at) VALUES (?, ?, ?, -1, 1, now(6))
    ON DUPLICATE KEY UPDATE target = target`;

/** The ledger rows of some keys, read after LEDGER_LOCK locked them. */
export function ledgerReadStatement(keys: number): string {
  return `SELECT key_hash, CAST(position AS CHAR) AS position, deleted, column_positions FROM ${LEDGER} WHERE target = ? AND key_hash IN (${Array.from({ length: keys }, () => '?').join(', ')}) FOR UPDATE`;
}

/** Moves a winner's ledger row to its position (every row exists and is locked); sent for all winners at once, in bulk. */
export const LEDGER_WRITE = `INSERT INTO ${LEDGER} (target, key_hash, \`key\`, position, deleted, changed_at, deleted_at, column_positions) VALUES (?, ?, ?, ?, ?, now(6), IF(?, now(6), NULL), ?)
    ON DUPLICATE KEY UPDATE position = VALUES(position), deleted = VALUES(deleted), changed_at = VALUES(changed_at), deleted_at = VALUES(deleted_at), column_positions = VALUES(column_positions)`;
