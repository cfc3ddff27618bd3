import type { TableName } from '../model/table.js';
import type { CanonicalRows } from './sink.js';

/** A synthetic record written at the source to time the path end to end (src/observe/canary.ts). */
export interface CanaryRecord {
  id: string;
  label: string;
  amount: string;
  tags: string[];
}

/** A logical replication slot at the source, as the capture keeps it (PostgreSQL). */
export interface ReplicationSlotState {
  slot: string;
  /** A connector streams from it now. */
  active: boolean;
  /** WAL the server keeps for the slot (from its restart position): what a stopped capture costs the source's disk. */
  retainedWalBytes: number;
  /** WAL written since the capture last confirmed: how far behind the source's changes the capture is. */
  flushLagBytes: number;
}

/** A source table as a capture sees it: whether it is there, its key, and what its deletes and updates will carry. */
export interface CapturedTable {
  table: TableName;
  exists: boolean;
  /** The primary key's columns (Debezium's record key); empty without one. */
  keyColumns: string[];
  columns: string[];
  /** What an update or delete carries of the old row: default (the key), full, index, nothing. */
  replicaIdentity: 'default' | 'full' | 'index' | 'nothing' | undefined;
  /** Columns whose values the database may store out of line: an update leaving them alone sends a placeholder. */
  outOfLine: string[];
}

/** Whether the source can be captured: its settings and the capturing user's rights, and each table. */
export interface CaptureReadiness {
  /** wal_level logical (PostgreSQL), binlog ROW (MariaDB): what a log-based capture needs. */
  logDecoding: { ok: boolean; detail: string };
  /** The user may stream changes (REPLICATION or superuser). */
  replication: { ok: boolean; detail: string };
  tables: CapturedTable[];
}

/**
 * The database a flow's changes are captured from, as the engine reads and writes it: canaries
 * written into it, its rows compared by reconcile. A kind of database that can be a source provides
 * one beside its sink (SinkKind.openSource).
 */
export interface SourceDatabase {
  readonly kind: string;
  /** Rows in canonical text, for reconcile with a destination of another kind. */
  readonly canonical: CanonicalRows;
  /** Rows in the database's own text, for reconcile with a destination of the same kind. */
  readonly native: CanonicalRows;
  /** The current rows of these keys (key text as `native` gives it): their key values and `values`, as text. */
  rowsByKey(
    t: TableName,
    keyColumns: readonly string[],
    values: readonly string[],
    keys: readonly string[],
  ): Promise<Map<string, { key: (string | null)[]; values: (string | null)[] }>>;
  /** Creates the canary table if it is missing. */
  ensureCanaryTable(t: TableName): Promise<void>;
  /** Writes one canary in its own transaction; returns its commit time (ms since the epoch). */
  writeCanary(t: TableName, record: CanaryRecord): Promise<number>;
  /** What a capture of these tables needs, as the source has it (trustsync init, validate --online). */
  captureReadiness?(tables: readonly TableName[]): Promise<CaptureReadiness>;
  /** The source's logical replication slots, where the kind has them (PostgreSQL). */
  replicationSlots?(): Promise<ReplicationSlotState[]>;
  /** Closes the connections; idempotent. */
  close(): Promise<void>;
}
