import type { ChangeEvent } from '../../model/change.js';
import type { RowRejected } from '../../model/errors.js';
import type { Resolution, Values } from '../../policy/resolve.js';
import type { EntityPolicy } from '../../policy/policy.js';
import type { VectorOrder, VersionVector } from '../../policy/vector.js';

/* What the engine and the governed writer pass each other about a destination under policy. */

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
