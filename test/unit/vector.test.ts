import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { compareVersionVectors, mergeVersionVectors, vectorFromJson, vectorToJson, type VersionVector } from '../../src/policy/vector.js';

const vector = fc.dictionary(fc.constantFrom('app', 'crm', 'erp'), fc.bigInt({ min: 0n, max: 1n << 70n }));
const flip = { newer: 'older', older: 'newer', equal: 'equal', concurrent: 'concurrent' } as const;

describe('version vectors', () => {
  it('tell newer, older, equal and concurrent', () => {
    expect(compareVersionVectors({ app: 2n, crm: 1n }, { app: 1n, crm: 1n })).toBe('newer');
    expect(compareVersionVectors({ app: 1n }, { app: 1n, crm: 3n })).toBe('older');
    expect(compareVersionVectors({ app: 1n, crm: 0n }, { app: 1n })).toBe('equal');
    expect(compareVersionVectors({ app: 2n, crm: 1n }, { app: 1n, crm: 2n })).toBe('concurrent');
  });

  it('compare antisymmetrically: a against b is the mirror of b against a', () => {
    fc.assert(fc.property(vector, vector, (a, b) => compareVersionVectors(b, a) === flip[compareVersionVectors(a, b)]));
  });

  it('merge to a vector that has seen both, and is newer or equal than each', () => {
    fc.assert(
      fc.property(vector, vector, (a, b) => {
        const m = mergeVersionVectors(a, b);
        return ['newer', 'equal'].includes(compareVersionVectors(m, a)) && ['newer', 'equal'].includes(compareVersionVectors(m, b));
      }),
    );
  });

  it('survive storage as JSON, positions beyond 2^53 included', () => {
    fc.assert(fc.property(vector, (v: VersionVector) => compareVersionVectors(vectorFromJson(JSON.parse(JSON.stringify(vectorToJson(v)))), v) === 'equal'));
  });
});
