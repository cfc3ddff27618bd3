import { describe, expect, it } from 'vitest';
import { UNAVAILABLE_VALUE, type Row } from '../../src/model/change.js';
import { changeAt } from '../support/events.js';
import { columnFills, unchangedColumns, type Carrier } from '../../src/order/unchanged-columns.js';

function carrier(lsn: number, row: Row | null): Carrier {
  return { event: changeAt(1, lsn, { op: row ? 'u' : 'd', after: row }), row: row ?? {} };
}

const rank = (lsn: number) => (BigInt(lsn) << 64n) | BigInt(lsn);
const filledFrom = (fills: Map<string, Carrier>) => Object.fromEntries([...fills].map(([c, f]) => [c, Number(f.event.position.lsn)]));

describe('filling TOASTed columns a newer row left unchanged', () => {
  it('names the placeholder columns the destination has', () => {
    expect(unchangedColumns({ id: 1, a: UNAVAILABLE_VALUE, b: 'x', gone: UNAVAILABLE_VALUE }, (c) => c !== 'gone')).toEqual(['a']);
  });

  it('takes, per column, the newest carrier between the held position and the row', () => {
    const held = { a: rank(10).toString(), b: rank(10).toString() };
    const fills = columnFills(held, rank(50), [
      carrier(20, { a: 'a20', b: 'b20' }),
      carrier(30, { a: 'a30', b: UNAVAILABLE_VALUE }),
      carrier(60, { a: 'newer than the row' }),
    ]);
    expect(filledFrom(fills)).toEqual({ a: 30, b: 20 });
  });

  it('never takes a change at or before the held position, nor the row itself, nor a delete', () => {
    const held = { a: rank(30).toString() };
    expect(columnFills(held, rank(50), [carrier(30, { a: 'same' }), carrier(20, { a: 'older' }), carrier(50, { a: 'the row' }), carrier(40, null)]).size).toBe(
      0,
    );
  });

  it('lets a snapshot read fill a column that was never set', () => {
    const read = carrier(0, { a: 'snap' });
    read.event.position = { snapshot: true, commitLsn: 0n, lsn: 0n };
    expect(filledFrom(columnFills({ a: '-1' }, rank(50), [read]))).toEqual({ a: 0 });
  });
});
