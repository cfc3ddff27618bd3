import type { ChangeEvent, Row, TruncateEvent } from '../model/change.js';
import type { BatchAudit, RowDecision, TruncateDecision } from '../model/decision.js';
import type { HistoryRow } from '../model/history-row.js';
import type { TableMapping, TableName } from '../model/table.js';
import type { Explanation } from '../history/explain.js';
import type { GovernanceOptions, GovernedDestination } from './governance.js';
import type { SourceDatabase } from './source.js';

/** What a kind of destination can do; a flow file asking for more is refused at start. */
export interface SinkCapabilities {
  /** Ledger claim, rows and decision history in one destination transaction. */
  transactions: boolean;
  /** Field-level policies (authority, conflicts, review, two-way sync): row state beside the rows. */
  governance: boolean;
  /** A governed table's field authority only: fields another system owns are left out of what is sent (an API cannot be read for conflicts). */
  fieldAuthority: boolean;
  /** A source TRUNCATE applied at its position (`truncate: apply`). */
  truncate: boolean;
  /** Rows read back by key: reconcile, state topics. */
  reconcile: boolean;
  /** Each change of a key sent in source order, not only the newest of a batch (`deliver: every`). */
  everyChange: boolean;
}

/**
 * A destination, as the engine knows it. Every write is guarded by the position ledger and told in
 * the decision history, in the same transaction where the sink has transactions.
 */
export interface Sink {
  readonly kind: string;
  readonly capabilities: SinkCapabilities;
  /** Creates or brings up to date trustsync's own tables (ledger, history). */
  prepare(): Promise<void>;
  /** Throws when the destination cannot be reached: readiness. */
  ping(): Promise<void>;
  /**
   * Writes the newest change per key (collapsed by the engine): positions claimed, rows written,
   * decisions and `audit` on record. `superseded`, the batch's older changes, may still carry
   * values a newer row left unchanged (TOAST).
   */
  applyBatch(m: TableMapping, latest: readonly ChangeEvent[], audit?: BatchAudit, superseded?: readonly ChangeEvent[]): Promise<RowDecision[]>;
  /** A source TRUNCATE, applied at its position (see SinkCapabilities.truncate). */
  applyTruncate(m: TableMapping, t: TruncateEvent, wantKeys: boolean, audit?: Omit<BatchAudit, 'extra'>): Promise<TruncateDecision>;
  /** Decisions that belong to no batch write (undecodable records, ignored TRUNCATEs), on record. */
  recordDecisions(flow: string, rows: readonly HistoryRow[]): Promise<void>;
  /** Current rows of these keys (values as text), null for a key the table lacks. */
  readRows(m: TableMapping, keys: ReadonlyMap<string, Row | null>): Promise<Map<string, Record<string, string | null> | null>>;
  /** The destination table's columns, or undefined while it does not exist. */
  columnsOf(t: TableName): Promise<string[] | undefined>;
  /** The story of one record, from the decision history. */
  explain(target: string, key: string, options?: { at?: Date; field?: string; all?: boolean }): Promise<Explanation>;
  purgeTombstones(retentionMs: number): Promise<number>;
  purgeHistory(flow: string, retentionMs: number): Promise<number>;
  snapshotLongHistories(flow: string): Promise<number>;
  /** This database's rows in canonical text, for reconcile across kinds. */
  readonly canonical: CanonicalRows;
  /** This database's rows in its own text, for reconcile with a source of the same kind (repairs copy that text). */
  readonly native: CanonicalRows;
  /** Reconcile's repair; absent where the kind cannot repair yet. */
  readonly repair?: RepairableSink;
  /** Policies on this destination (capabilities.governance); absent where the kind cannot govern. */
  openGovernance?(options: GovernanceOptions): GovernedDestination;
  /** Closes the connections; idempotent. */
  close(): Promise<void>;
}

export interface SinkOptions {
  /** Names the connections (e.g. application_name), for the destination's own monitoring. */
  name: string;
  /** Connections at most. */
  connections: number;
  /** A connection the destination dropped while idle; the next write fails and is retried. */
  onConnectionLost?: (err: Error) => void;
  /** The kind's own section of the flow file (destination.http), as the flow file's checks left it. */
  settings?: unknown;
  /** Told of each request, where the destination is an API reached by requests (HTTP): the flow's metrics. */
  requests?: RequestObserver;
}

/** One attempt of one request to an API destination, as it ended. */
export interface RequestAttempt {
  method: string;
  /** The answer's status; 0 when none came (timeout, refused or reset connection). */
  status: number;
  /** 1 for the first attempt of a change's request, more for its retries. */
  attempt: number;
  seconds: number;
  /** Time spent waiting for the destination's pace (rate limit, or a pause the API asked for) before sending. */
  waitedMs: number;
  /** The API asked everyone to slow down (429/503): the destination pauses and halves its pace. */
  throttled: boolean;
}

/** What an API destination reports as it sends: the flow's metrics implement it. */
export interface RequestObserver {
  attempted(a: RequestAttempt): void;
  /** Requests in flight now, and the destination's pace (requests per second; Infinity with no limit). */
  load(inFlight: number, pace: number): void;
}

/** A kind of destination: the URL schemes it serves, what it can do, and how to open one. */
export interface SinkKind {
  kind: string;
  /** URL schemes with their colon, e.g. `postgres:`. */
  schemes: readonly string[];
  capabilities: SinkCapabilities;
  open(url: string, options: SinkOptions): Sink;
  /** The same kind of database as a captured source (canaries, reconcile); absent where trustsync cannot read it as one. */
  openSource?(url: string, options: SinkOptions): SourceDatabase;
}

/**
 * A database's rows as reconcile compares them across kinds: every value as one canonical text that
 * each kind produces alike (instants in UTC as `YYYY-MM-DD HH:MM:SS.ffffff`, booleans 1/0, bytes as
 * lower-case hex, the rest as the database's own text of it), rows spread over buckets by the MD5
 * of their key's text, and each bucket digested inside the database, so only digests travel.
 */
export interface CanonicalRows {
  /** Columns (name → the database's type) and primary key; undefined while the table does not exist. */
  shape(t: TableName): Promise<{ columns: Map<string, string>; keyColumns: string[] } | undefined>;
  /** The table's rows, roughly (from statistics): how many buckets to use. */
  estimateRows(t: TableName): Promise<number>;
  /** Per bucket: row count and the sum of the rows' hashes (order-free, so collations do not matter). */
  bucketDigests(t: TableName, key: readonly string[], values: readonly string[], buckets: number): Promise<Map<number, { rows: number; digest: string }>>;
  /** The rows of some buckets: key text → canonical values. */
  bucketRows(
    t: TableName,
    key: readonly string[],
    values: readonly string[],
    buckets: number,
    which: readonly number[],
  ): Promise<Map<string, (string | null)[]>>;
}

/** A key reconcile found differing that a repair writes: the source's row (or some of its fields) copied, or the row deleted. */
export interface RepairCandidate {
  key: string;
  action: 'update-destination' | 'delete-destination';
  /** The differing field; absent for a row missing from the destination (the whole row is written). */
  field?: string;
}

/** A reconcile repair without policy: what to write, and how to read the source's current rows. */
export interface CopyRepair {
  flow: string;
  m: TableMapping;
  /** Destination key columns, and the compared columns as source name → destination name. */
  keyColumns: readonly string[];
  pairs: readonly { src: string; dst: string }[];
  candidates: readonly RepairCandidate[];
  /** The keys' ledger states when the differences were found (see Sink.ledgerStates). */
  seen: ReadonlyMap<string, string>;
  /** The source's rows of these keys, read after the keys are locked: key text → key values and compared values. */
  readSource(keys: readonly string[]): Promise<Map<string, { key: (string | null)[]; values: (string | null)[] }>>;
}

/** What reconcile's `--repair` needs of a destination kind; absent where the kind cannot repair yet. */
export interface RepairableSink {
  /** Each key's ledger state as text (its position, deleted or not): a repair leaves a key that moved since. */
  ledgerStates(m: TableMapping, keys: readonly string[]): Promise<Map<string, string>>;
  /**
   * Writes the repairs in one transaction with history, only for keys whose ledger state is still
   * `seen`'s (locked first, so a flow's next write of them waits). Returns the keys that moved, left to the flow.
   */
  repairCopy(r: CopyRepair): Promise<Set<string>>;
}
