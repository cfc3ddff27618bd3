import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { comparePositions, formatRank, positionRank, postgresPosition } from '../../src/order/position.js';
import { InvalidPosition } from '../../src/model/errors.js';
import type { Position } from '../../src/model/change.js';

const lsn = fc.bigInt({ min: 1n, max: (1n << 64n) - 1n });
const position: fc.Arbitrary<Position> = fc.oneof(
  fc.record({ snapshot: fc.constant(false), commitLsn: fc.oneof(fc.constant(0n), lsn), lsn }),
  fc.record({ snapshot: fc.constant(true), commitLsn: fc.constant(0n), lsn }),
);

describe('source positions order changes by commit, never by arrival or clock', () => {
  it('reads Debezium PostgreSQL sequence pairs as numbers, not strings', () => {
    const a = postgresPosition('["9","100"]', 100, false);
    const b = postgresPosition('["10","20"]', 20, false);
    // As strings "9" > "10"; as LSNs the later commit wins.
    expect(comparePositions(a, b)).toBeLessThan(0);
  });

  it('keeps digits beyond 2^53 exactly', () => {
    const a = postgresPosition('["18446744073709551000","18446744073709551001"]', null, false);
    const b = postgresPosition('["18446744073709551000","18446744073709551002"]', null, false);
    expect(comparePositions(a, b)).toBeLessThan(0);
    expect(positionRank(b) - positionRank(a)).toBe(1n);
  });

  it('orders the first transaction of a new slot (no last commit yet) by its own LSN', () => {
    const first = postgresPosition('[null,"36064912"]', 36064912, false);
    const next = postgresPosition('["36065088","36065088"]', 36065088, false);
    expect(comparePositions(first, next)).toBeLessThan(0);
    // A change an earlier connector delivered from a transaction that committed before this one began.
    const earlierConnector = postgresPosition('["36000000","36010000"]', 36010000, false);
    expect(comparePositions(earlierConnector, first)).toBeLessThan(0);
    const sameTransaction = postgresPosition('[null,"36064990"]', 36064990, false);
    expect(comparePositions(first, sameTransaction)).toBeLessThan(0);
  });

  it('ranks snapshot reads below every streamed change', () => {
    fc.assert(
      fc.property(lsn, lsn, (x, y) => {
        const snap = postgresPosition(`["${x}","${x}"]`, x, true);
        const streamed = postgresPosition(`[null,"${y}"]`, y, false);
        return comparePositions(snap, streamed) < 0 && positionRank(snap) < positionRank(streamed);
      }),
    );
  });

  it('is a total order: antisymmetric and transitive', () => {
    fc.assert(
      fc.property(position, position, position, (a, b, c) => {
        expect(Math.sign(comparePositions(a, b)) + Math.sign(comparePositions(b, a))).toBe(0);
        if (comparePositions(a, b) <= 0 && comparePositions(b, c) <= 0) expect(comparePositions(a, c)).toBeLessThanOrEqual(0);
      }),
    );
  });

  it('stores as one number with the same order (the guard inside the database compares these)', () => {
    fc.assert(
      fc.property(position, position, (a, b) => {
        const byRank = positionRank(a) === positionRank(b) ? 0 : positionRank(a) < positionRank(b) ? -1 : 1;
        expect(byRank).toBe(Math.sign(comparePositions(a, b)));
      }),
    );
  });

  it('reads a sequence the same however its JSON is laid out', () => {
    const lsnText = fc.bigInt({ min: 0n, max: 1n << 65n }).map(String);
    fc.assert(
      fc.property(fc.option(lsnText), lsnText, fc.boolean(), (commit, at, snapshot) => {
        const first = commit === null ? 'null' : `"${commit}"`;
        const read = (sequence: string) => {
          try {
            return postgresPosition(sequence, null, snapshot);
          } catch (err) {
            return (err as Error).message;
          }
        };
        // Debezium's own layout, and the same pair spaced out: only the first is read without JSON.parse.
        expect(read(`[${first},"${at}"]`)).toEqual(read(`[ ${first} , "${at}" ]`));
      }),
    );
  });

  it('rejects what is not an LSN, naming the field', () => {
    expect(() => postgresPosition('["x","1"]', 1, false)).toThrowError(InvalidPosition);
    expect(() => postgresPosition('not json', 1, false)).toThrowError(/source.sequence is not JSON/);
    expect(() => postgresPosition(undefined, undefined, false)).toThrowError(/neither source.sequence nor source.lsn/);
  });

  it('prints a stored rank back as its LSN pair', () => {
    expect(formatRank(positionRank(postgresPosition('["36065088","36065296"]', null, false)))).toBe('36065088/36065296');
    expect(formatRank('0')).toBe('snapshot');
  });
});
