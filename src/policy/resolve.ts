import { fieldPolicy, type EntityPolicy, type FallbackStrategy, type FieldPolicy, type Strategy } from './policy.js';
import { mergeValues } from './merge.js';
import { validate } from './validators.js';

export type Values = Readonly<Record<string, unknown>>;

/** One side of a decision: the change coming in, or the record as the destination holds it. */
export interface Side {
  system: string;
  /** The row's values; null when the row does not exist (deleted, or never created) on this side. */
  values: Values | null;
  /** Fields this side changed that the other side has not seen. */
  changed: ReadonlySet<string>;
  /** This side deleted the row, unseen by the other. */
  deleted: boolean;
  /** When the change committed at its source (µs since the epoch), for latest_valid_change. */
  commitTsUs: bigint | null;
  /** The source transaction that made the change: identifies a review item from either direction. */
  txId: string | null;
  /** Per field, the change that last set it, where it differs from the row's (earlier unseen edits). */
  fieldChanges?: Readonly<Record<string, { txId: string | null; commitTsUs: bigint | null }>>;
}

const txOf = (s: Side, field: string) => s.fieldChanges?.[field]?.txId ?? s.txId;
const tsOf = (s: Side, field: string) => s.fieldChanges?.[field]?.commitTsUs ?? s.commitTsUs;

export interface ResolveInput {
  policy: EntityPolicy;
  incoming: Side;
  local: Side;
  /** The values both sides last agreed on, where known: the base of three-way merges. */
  base: Values | null;
  /**
   * In a bidirectional sync a record kept against a delete is restored in the deleting system by the
   * flow that reads that delete — it alone has the whole record as the keeping side holds it — so the
   * flow meeting the delete as a missing row writes nothing. One-way, that flow brings the row back.
   */
  peerRestoresKeptRows?: boolean;
}

export type FieldOutcome =
  | { field: string; outcome: 'applied'; value: unknown }
  | { field: string; outcome: 'rejected'; reason: 'authority' | 'validation'; detail: string }
  | { field: string; outcome: 'conflict'; strategy: Strategy; winner: 'incoming' | 'local' | 'merged'; value: unknown; detail: string }
  | {
      field: string;
      outcome: 'review';
      kept: 'incoming' | 'local';
      value: unknown;
      owner: string;
      proposer: string;
      proposed: unknown;
      proposerTxId: string | null;
      detail: string;
    };

export type RowAction = 'upsert' | 'delete' | 'none';

export interface Resolution {
  action: RowAction;
  /** The incoming delete lost to a concurrent change: the record goes back into the system that deleted it. */
  restoreInSource?: boolean;
  /** Field → value to write into the destination (upsert only). */
  writes: Record<string, unknown>;
  fields: FieldOutcome[];
}

const canon = (v: unknown) => JSON.stringify(v === undefined ? null : v);
const same = (a: unknown, b: unknown) => canon(a) === canon(b);

type Winner = 'incoming' | 'local';

/** Who wins a conflict by strategy alone (both sides allowed and valid). Symmetric: both directions agree. */
function pickByStrategy(strategy: FallbackStrategy, p: FieldPolicy, input: ResolveInput, field: string): Winner {
  const { incoming, local } = input;
  const owner: Winner | undefined = incoming.system === p.owner ? 'incoming' : local.system === p.owner ? 'local' : undefined;
  const latest = (): Winner => {
    const [a, b] = [tsOf(incoming, field), tsOf(local, field)];
    if (a !== null && b !== null && a !== b) return a > b ? 'incoming' : 'local';
    // Same instant, or a time unknown: the owner's side, else the system that sorts first — never arrival.
    return owner ?? (incoming.system < local.system ? 'incoming' : 'local');
  };
  switch (strategy) {
    case 'local_wins':
    case 'manual_review':
      return owner ?? latest();
    case 'external_wins':
      return owner === undefined ? latest() : owner === 'incoming' ? 'local' : 'incoming';
    case 'latest_valid_change':
      return latest();
  }
}

const otherSide = (w: Winner): Winner => (w === 'incoming' ? 'local' : 'incoming');

/** A field both sides changed to different values, without seeing each other. */
function resolveConflict(p: FieldPolicy, input: ResolveInput, field: string): Extract<FieldOutcome, { value: unknown }> {
  const sides = { incoming: input.incoming, local: input.local };
  const valueOf = (w: Winner) => sides[w].values?.[field] ?? null;
  // A side that may not write the field, or whose value fails validation, is no candidate.
  const localProblem = !p.writers.includes(input.local.system)
    ? `${input.local.system} may not write ${field}`
    : validate(p.validators, valueOf('local'), { field, previous: input.base?.[field] ?? null, system: input.local.system });
  if (localProblem)
    return {
      field,
      outcome: 'conflict',
      strategy: p.strategy,
      winner: 'incoming',
      value: valueOf('incoming'),
      detail: `the destination's concurrent value is no candidate (${localProblem})`,
    };

  let strategy: Strategy = p.strategy;
  let note = '';
  if (strategy === 'merge') {
    const ownerSide: Winner = input.incoming.system === p.owner ? 'incoming' : 'local';
    const m = mergeValues(input.base?.[field] ?? null, valueOf(ownerSide), valueOf(otherSide(ownerSide)));
    if (m.merged) return { field, outcome: 'conflict', strategy, winner: 'merged', value: m.value, detail: 'both changes combined' };
    strategy = p.fallback!;
    note = `merge impossible (${m.why}), fell back to ${strategy}: `;
  }
  const winner = pickByStrategy(strategy, p, input, field);
  if (strategy === 'manual_review') {
    const proposer = otherSide(winner);
    return {
      field,
      outcome: 'review',
      kept: winner,
      value: valueOf(winner),
      owner: sides[winner].system,
      proposer: sides[proposer].system,
      proposed: valueOf(proposer),
      proposerTxId: txOf(sides[proposer], field),
      detail: `${note}${sides[winner].system}'s value kept, ${sides[proposer].system}'s proposal queued for review`,
    };
  }
  const why: Record<FallbackStrategy, string> = {
    local_wins: `the owner ${p.owner}'s value wins`,
    external_wins: `the non-owner's value wins`,
    latest_valid_change: 'the later valid change wins',
    manual_review: '',
  };
  return { field, outcome: 'conflict', strategy, winner, value: valueOf(winner), detail: `${note}${why[strategy]} (${sides[winner].system})` };
}

/**
 * A whole-row conflict: one side deleted the record while the other changed it. The entity default
 * decides (merge by its fallback): by owner as for a field, except that latest_valid_change keeps the
 * record — a deleted row has no commit time to compare in the system that deleted it, and an edit
 * made without seeing the delete is never silently lost (delete again). A review item of a row is
 * named by the editing side's transaction, which both directions know.
 */
function resolveRowConflict(input: ResolveInput): { keep: boolean; outcome: Extract<FieldOutcome, { outcome: 'conflict' | 'review' }> } {
  const p = input.policy.default;
  const deleter: Winner = input.incoming.deleted ? 'incoming' : 'local';
  const sides = { incoming: input.incoming, local: input.local };
  const strategy: Strategy = p.strategy === 'merge' ? p.fallback! : p.strategy;
  if (strategy === 'latest_valid_change') {
    return {
      keep: true,
      outcome: {
        field: '*',
        outcome: 'conflict',
        strategy,
        winner: otherSide(deleter),
        value: 'kept',
        detail: `delete against a concurrent change: the record is kept (${sides[otherSide(deleter)].system}'s change did not see the delete)`,
      },
    };
  }
  const winner = pickByStrategy(strategy, p, input, '*');
  const keep = winner !== deleter;
  const value = keep ? 'kept' : 'deleted';
  if (strategy === 'manual_review') {
    const proposer = otherSide(winner);
    return {
      keep,
      outcome: {
        field: '*',
        outcome: 'review',
        kept: winner,
        value,
        owner: sides[winner].system,
        proposer: sides[proposer].system,
        proposed: proposer === deleter ? 'deleted' : 'kept',
        proposerTxId: sides[otherSide(deleter)].txId,
        detail: `delete against a concurrent change: ${sides[winner].system}'s side kept, the other queued for review`,
      },
    };
  }
  return {
    keep,
    outcome: { field: '*', outcome: 'conflict', strategy, winner, value, detail: `delete against a concurrent change: the record is ${value} by ${strategy}` },
  };
}

/**
 * Decides, field by field, what of an incoming change the destination takes: authority first, then
 * validation, then — only where both sides changed the same field unseen by each other — the
 * field's strategy. Pure: the same input gives the same answer in either direction of a sync.
 */
export function resolveChange(input: ResolveInput): Resolution {
  const { policy, incoming, local } = input;
  const fields: FieldOutcome[] = [];

  if (incoming.deleted) {
    if (!policy.default.writers.includes(incoming.system)) {
      return {
        action: 'none',
        writes: {},
        fields: [
          {
            field: '*',
            outcome: 'rejected',
            reason: 'authority',
            detail: `${incoming.system} may not delete ${policy.entity} records (writers: ${policy.default.writers.join(', ')})`,
          },
        ],
      };
    }
    if (local.values === null) return { action: 'none', writes: {}, fields };
    if (local.changed.size === 0) return { action: 'delete', writes: {}, fields };
    const { keep, outcome } = resolveRowConflict(input);
    return { action: keep ? 'none' : 'delete', writes: {}, fields: [outcome], restoreInSource: keep };
  }

  let revive = false;
  if (local.deleted) {
    const { keep, outcome } = resolveRowConflict(input);
    if (!keep) return { action: 'none', writes: {}, fields: [outcome] };
    if (input.peerRestoresKeptRows)
      return {
        action: 'none',
        writes: {},
        fields: [{ ...outcome, detail: `${outcome.detail}; ${local.system} gets it back from the flow that reads its delete` }],
      };
    fields.push(outcome);
    revive = true;
  }

  const writes: Record<string, unknown> = {};
  // A record coming back to life takes every field the incoming side may write.
  const candidates = revive || local.values === null ? Object.keys(incoming.values ?? {}).filter((f) => incoming.values![f] !== null) : [...incoming.changed];
  for (const field of candidates) {
    const p = fieldPolicy(policy, field);
    const value = incoming.values?.[field] ?? null;
    // A record brought back keeps, for fields the incoming side may not set, their last agreed values.
    const restore = () => {
      if (revive && input.base && field in input.base) writes[field] = input.base[field];
    };
    if (!p.writers.includes(incoming.system)) {
      fields.push({
        field,
        outcome: 'rejected',
        reason: 'authority',
        detail: `${incoming.system} may not write ${field} (owner ${p.owner}, writers ${p.writers.join(', ')})`,
      });
      restore();
      continue;
    }
    // Against a concurrent change the previous value is the agreed one: both directions judge alike.
    const previous = local.changed.has(field) ? (input.base?.[field] ?? null) : (local.values?.[field] ?? null);
    const problem = validate(p.validators, value, { field, previous, system: incoming.system });
    if (problem) {
      fields.push({ field, outcome: 'rejected', reason: 'validation', detail: problem });
      restore();
      continue;
    }
    const localValue = local.values?.[field] ?? null;
    if (!revive && local.changed.has(field) && !same(localValue, value)) {
      const o = resolveConflict(p, input, field);
      fields.push(o);
      if (!same(o.value, localValue)) writes[field] = o.value;
      continue;
    }
    if (local.values === null || revive || !same(localValue, value)) writes[field] = value;
    fields.push({ field, outcome: 'applied', value });
  }
  const action: RowAction = local.values === null || revive || Object.keys(writes).length > 0 ? 'upsert' : 'none';
  return { action, writes, fields };
}
