import { UNAVAILABLE_VALUE, type ChangeEvent } from '../model/change.js';
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
  return { latest: [...newest.values()].map((e) => withUnchangedValues(e, superseded)), superseded };
}

/**
 * The newest change may say "unchanged" for a TOASTed column. When an older change of the same key in
 * the batch carried the value, that is the value it kept: fill it in, so a row first written by this
 * batch (the older change was collapsed away) does not lose it.
 */
function withUnchangedValues(e: ChangeEvent, superseded: readonly Superseded[]): ChangeEvent {
  if (!e.after) return e;
  const missing = Object.keys(e.after).filter((c) => e.after![c] === UNAVAILABLE_VALUE);
  if (missing.length === 0) return e;
  const older = superseded
    .map((s) => s.event)
    .filter((o) => o.keyText === e.keyText && o.after && comparePositions(o.position, e.position) < 0)
    .sort((a, b) => comparePositions(b.position, a.position));
  if (older.length === 0) return e;
  const after = { ...e.after };
  for (const column of missing) {
    const source = older.find((o) => column in o.after! && o.after![column] !== UNAVAILABLE_VALUE);
    if (source) after[column] = source.after![column];
  }
  return { ...e, after };
}
