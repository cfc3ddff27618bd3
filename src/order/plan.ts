import type { ChangeEvent } from '../model/change.js';
import { comparePositions } from './position.js';

/**
 * A change that will not be written because a newer change for its key is in the same batch
 * ('superseded'), or the very same change is ('duplicate').
 */
export interface Superseded {
  event: ChangeEvent;
  by: ChangeEvent;
  reason: 'superseded' | 'duplicate';
}

export interface BatchPlan {
  /** The newest change per key, in the order their keys first appeared. */
  latest: ChangeEvent[];
  superseded: Superseded[];
}

/**
 * Collapses a batch to the newest change per key, by source position — never by arrival.
 * Only the newest can win against the sink anyway; writing the others would be work thrown away.
 * A superseded change may still carry the value of a TOASTed column the newest left unchanged: the
 * sink weighs those against the position that set the stored value (unchanged-columns.ts).
 */
export function collapseByKey(events: readonly ChangeEvent[]): BatchPlan {
  const newest = new Map<string, ChangeEvent>();
  const superseded: Superseded[] = [];
  for (const e of events) {
    const current = newest.get(e.keyText);
    if (!current) {
      newest.set(e.keyText, e);
      continue;
    }
    const order = comparePositions(e.position, current.position);
    if (order > 0) {
      newest.set(e.keyText, e);
      superseded.push({ event: current, by: e, reason: 'superseded' });
    } else {
      superseded.push({ event: e, by: current, reason: order === 0 ? 'duplicate' : 'superseded' });
    }
  }
  return { latest: [...newest.values()], superseded };
}

/**
 * Keeps every change of a batch, each key's in source order, for destinations that must see each
 * transition (`deliver: every`); only a change that is in the batch twice is left out ('duplicate').
 */
export function everyChangeInOrder(events: readonly ChangeEvent[]): BatchPlan {
  const byKey = new Map<string, ChangeEvent[]>();
  const superseded: Superseded[] = [];
  for (const e of events) {
    const changes = byKey.get(e.keyText);
    if (!changes) byKey.set(e.keyText, [e]);
    else {
      const same = changes.find((c) => comparePositions(c.position, e.position) === 0);
      if (same) superseded.push({ event: e, by: same, reason: 'duplicate' });
      else changes.push(e);
    }
  }
  const latest = [...byKey.values()].flatMap((changes) => changes.sort((a, b) => comparePositions(a.position, b.position)));
  return { latest, superseded };
}
