import type { ChangeEvent } from '../model/change.js';
import type { BatchAudit } from '../model/decision.js';
import type { TableMapping } from '../model/table.js';
import type { RowRejected } from '../model/errors.js';
import type { Resolution, Values } from '../policy/resolve.js';
import type { EntityPolicy } from '../policy/policy.js';
import type { VectorOrder, VersionVector } from '../policy/vector.js';

/* A destination under policy, as the engine knows it, and what they pass each other. */

/** The systems a governed flow connects and the policy of the entity a table holds. */
export interface Governance {
  flow: string;
  policy: EntityPolicy;
  sourceSystem: string;
  destinationSystem: string;
}

/** A captured change that is trustsync's own write into the source, with what that write carried. */
export interface EchoRecord {
  xid: string;
  originSystem: string;
  originPosition: bigint | null;
  originTxId: string | null;
  /** The values of the change that caused the write, as the system it came from held them. */
  originValues: Values | null;
}

export type GovernedDecision =
  | {
      decision: 'resolved';
      event: ChangeEvent;
      resolution: Resolution;
      order: VectorOrder;
      incoming: VersionVector;
      stored: VersionVector;
      xid: string | null;
      /** The destination's values before the decision (null: no row). */
      local: Values | null;
      /** The write record's key, when trustsync wrote. */
      idempotencyKey: string | null;
    }
  | { decision: 'skipped'; reason: 'stale' | 'duplicate'; event: ChangeEvent; storedPosition: string }
  /** An older change's values for columns the record's newest change left unchanged (TOAST), taken as the policy allows. */
  | { decision: 'filled'; event: ChangeEvent; columns: string[]; values: Values; rowPosition: string; xid: string; idempotencyKey: string }
  | { decision: 'echo'; event: ChangeEvent; echo: EchoRecord }
  | { decision: 'rejected'; event: ChangeEvent; error: RowRejected };

export interface ReviewItem {
  id: string;
  flow: string;
  entity: string;
  target: string;
  key: string;
  field: string;
  owner: string;
  proposer: string;
  keptValue: unknown;
  proposedValue: unknown;
  proposerTxId: string | null;
  vectors: unknown;
  policy: unknown;
  status: 'open' | 'resolved';
  createdAt: Date;
  resolution: unknown;
}

/** How a governed destination reaches the source system of its flow. */
export interface GovernanceOptions {
  /** Names the connections, for the databases' own monitoring. */
  name: string;
  /** The flow: at start, the restores into the source it decided but had not carried out are done. */
  flow?: string;
  /**
   * The source system's database (source.database), where trustsync's own writes into it are looked up
   * (echo suppression) and a record the source deleted against a concurrent change here is restored.
   */
  sourceUrl?: string;
  onConnectionLost?: (err: Error) => void;
}

/**
 * A destination under field-level policy: each captured change weighed field by field against what
 * the destination holds, written with a record of the write so that its capture coming back is known
 * for an echo, and conflicts a person must settle kept in a review queue.
 */
export interface GovernedDestination {
  /** Whether trustsync's writes into the source are looked up (a source database was given). */
  readonly echoSuppression: boolean;
  /** Whether the destination knows the commit time of its own changes (latest_valid_change needs it). */
  tracksCommitTimes(): Promise<boolean>;
  /** Creates or brings up to date the policy state beside the rows, and the write records at the source. */
  prepare(): Promise<void>;
  /** Which of a batch's captured changes are trustsync's own writes into the source, by echoKey. */
  findEchoes(sourceTable: string, events: readonly ChangeEvent[]): Promise<Map<string, EchoRecord>>;
  /** One transaction per batch: every change decided, written (or rejected alone) and on record. */
  applyGoverned(
    m: TableMapping,
    events: readonly ChangeEvent[],
    g: Governance,
    echoes: ReadonlyMap<string, EchoRecord>,
    audit: BatchAudit,
  ): Promise<GovernedDecision[]>;
  listReviews(targets: readonly string[], all?: boolean): Promise<ReviewItem[]>;
  openReviews(targets: readonly string[]): Promise<number>;
  resolveReview(m: TableMapping, g: Governance, item: ReviewItem, chosen: unknown, take: string): Promise<{ wrote: boolean; detail: string }>;
  /** Records' states, read when reconcile finds a difference: repairFields compares them. */
  rowStates(m: TableMapping, keys: readonly string[]): Promise<Map<string, string>>;
  /** Reconcile's repair of fields under policy; returns the keys a flow wrote since `seen`, left to it. */
  repairFields(
    m: TableMapping,
    g: Governance,
    repairs: readonly { keyText: string; values: Values }[],
    reason: string,
    seen: ReadonlyMap<string, string>,
  ): Promise<{ repaired: number; moved: Set<string> }>;
  /** A value as the policy sees it, from the destination's text of it and the column's type. */
  valueFromText(text: string | null, type: string): unknown;
  purgeOutbound(retentionMs: number): Promise<number>;
  /** Closes the source connections it opened (the destination's are the sink's); idempotent. */
  close(): Promise<void>;
}

/** A change's key in the map findEchoes returns. */
export function echoKey(keyText: string, txId: string): string {
  return `${keyText}@${txId}`;
}
