import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { collapseByKey } from '../../src/order/plan.js';
import { comparePositions } from '../../src/order/position.js';
import type { ChangeEvent } from '../../src/model/change.js';
import { changeAt } from '../support/events.js';

function change(key: number, lsn: number, op: 'c' | 'u' | 'd' = 'u'): ChangeEvent {
  return changeAt(key, lsn, { op, after: op === 'd' ? null : { id: key, v: lsn } });
}

describe('collapsing a batch per key', () => {
  it('keeps exactly the newest change of every key, whatever the arrival order', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 50 })), { maxLength: 60 }), (pairs) => {
        const events = pairs.map(([k, l]) => change(k, l));
        const { latest, superseded } = collapseByKey(events);
        expect(latest.length + superseded.length).toBe(events.length);
        for (const e of latest) {
          const newest = Math.max(...pairs.filter(([k]) => k === Number(e.keyText)).map(([, l]) => l));
          expect(Number(e.position.lsn)).toBe(newest);
        }
        for (const s of superseded) expect(comparePositions(s.event.position, s.by.position)).toBeLessThanOrEqual(0);
      }),
    );
  });

  it('calls an exact repeat a duplicate and an older change superseded', () => {
    const { superseded } = collapseByKey([change(1, 5), change(1, 5), change(1, 3)]);
    expect(superseded.map((s) => s.reason).sort()).toEqual(['duplicate', 'superseded']);
  });
});

describe('TOAST placeholders in a collapsed batch', () => {
  it('stay placeholders: the sink decides against the stored position whether an older change fills them', () => {
    const insert = { ...change(1, 5, 'c'), after: { id: 1, notes: 'long text', tier: 'a' } };
    const update = { ...change(1, 9, 'u'), after: { id: 1, notes: '__debezium_unavailable_value', tier: 'b' } };
    const { latest, superseded } = collapseByKey([update, insert]);
    expect(latest[0]!.after).toEqual({ id: 1, notes: '__debezium_unavailable_value', tier: 'b' });
    expect(superseded.map((s) => s.event)).toEqual([insert]);
  });
});
