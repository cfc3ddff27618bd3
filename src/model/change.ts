/** The domain of trustsync: what a captured change is, where it came from, and where it stands in source order. */

export type Row = Record<string, unknown>;

/** Debezium's operations: create, update, delete, read (snapshot), truncate. */
export type Op = 'c' | 'u' | 'd' | 'r' | 't';

/**
 * Where a change stands in its source's commit order. For PostgreSQL this is Debezium's
 * `source.sequence` pair [last commit LSN, event LSN]. Snapshot reads rank below every
 * streamed change: a snapshot tells what existed, never what changed last.
 */
export interface Position {
  snapshot: boolean;
  commitLsn: bigint;
  lsn: bigint;
}

/** Where a Kafka record was read from. */
export interface RecordOrigin {
  topic: string;
  partition: number;
  offset: string;
}

/** A Kafka record's headers, as the client hands them over (kept as they are on a dead letter). */
export type RecordHeaders = Record<string, Buffer | string | (Buffer | string)[] | undefined>;

/** Type information for one field, as Kafka Connect describes it (when the event carries a schema). */
export interface FieldType {
  /** Connect's literal type: int8, int16, int32, int64, float32, float64, boolean, string, bytes, struct, array, map. */
  type: string;
  /** Connect's semantic name, e.g. io.debezium.time.ZonedTimestamp. */
  name?: string;
  optional: boolean;
}

export interface ChangeEvent {
  kind: 'change';
  /** Source table as "<schema>.<table>". */
  entity: string;
  key: Row;
  /** The key in a canonical text form, for maps and the position ledger. */
  keyText: string;
  op: Exclude<Op, 't'>;
  before: Row | null;
  after: Row | null;
  position: Position;
  txId: string | null;
  /** When the source committed the change (ms since epoch), if known. */
  sourceTsMs: number | null;
  /** The same instant in µs (Debezium's source.ts_us), exact enough to order two systems' commits. */
  sourceTsUs: bigint | null;
  /** When Debezium captured it. */
  captureTsMs: number | null;
  /** Field types of the row, when the record carried a schema (Avro, or JSON with schemas). */
  fields: Record<string, FieldType> | null;
  origin: RecordOrigin;
}

/** The null-valued record Debezium writes after a delete so that compaction can drop the key. */
export interface KafkaTombstone {
  kind: 'tombstone';
  keyText: string;
  origin: RecordOrigin;
}

export interface Heartbeat {
  kind: 'heartbeat';
  origin: RecordOrigin;
}

export interface TruncateEvent {
  kind: 'truncate';
  entity: string;
  position: Position;
  origin: RecordOrigin;
}

export type DecodedRecord = ChangeEvent | KafkaTombstone | Heartbeat | TruncateEvent;

/**
 * Debezium's stand-in for a TOASTed value an update did not change (the source sends no before-image
 * for it). It means "same as before": never written, filled from an older change of the key or kept.
 */
export const UNAVAILABLE_VALUE = '__debezium_unavailable_value';

/**
 * Canonical key text: values in key-field order as JSON, integers as bare digits whether they were
 * decoded as numbers (JSON) or BigInts (Avro), so both decodings name a key the same way.
 */
export function keyTextOf(key: Row): string {
  const parts = Object.keys(key).map((k) => {
    const v = key[k];
    return typeof v === 'bigint' ? v.toString() : JSON.stringify(v);
  });
  return parts.length === 1 ? parts[0]! : `[${parts.join(',')}]`;
}
