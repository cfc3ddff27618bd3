import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { mergeValues } from '../../src/policy/merge.js';

describe('three-way merge', () => {
  it('unions additions to a set-like array and honours removals, owner first', () => {
    expect(mergeValues(['+1', '+2'], ['+1', '+2', '+3'], ['+2', '+4'])).toEqual({ merged: true, value: ['+2', '+3', '+4'] });
  });

  it('combines JSON objects key by key, and gives up where both changed one key differently', () => {
    expect(mergeValues({ a: 1, b: 1 }, { a: 2, b: 1 }, { a: 1, b: 3, c: 4 })).toEqual({ merged: true, value: { a: 2, b: 3, c: 4 } });
    expect(mergeValues({ a: 1 }, { a: 2 }, { a: 3 })).toMatchObject({ merged: false });
  });

  it('cannot merge scalars', () => {
    expect(mergeValues('a', 'b', 'c')).toMatchObject({ merged: false });
  });

  it('of sets keeps exactly: what both kept, and what either added', () => {
    const set = fc.uniqueArray(fc.integer({ min: 0, max: 9 }), { maxLength: 8 });
    fc.assert(
      fc.property(set, set, set, (base, owner, other) => {
        const r = mergeValues(base, owner, other);
        if (!r.merged) return false;
        const got = new Set(r.value as number[]);
        for (let x = 0; x <= 9; x++) {
          const expected = base.includes(x) ? owner.includes(x) && other.includes(x) : owner.includes(x) || other.includes(x);
          if (got.has(x) !== expected) return false;
        }
        return (r.value as number[]).length === got.size;
      }),
    );
  });
});
