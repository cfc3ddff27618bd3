import { describe, expect, it } from 'vitest';
import { historyCopy } from '../../src/sink/postgres/history-sql.js';
import type { HistoryRow } from '../../src/model/history-row.js';

function row(i: number, notes: string): HistoryRow {
  return {
    target: 'public.items',
    entity: 'inventory.items',
    key: `{"id":${i}}`,
    op: 'u',
    decision: 'applied',
    reason: null,
    position: String(1000 + i),
    storedPosition: null,
    origin: { topic: 'cdc.inventory.items', partition: 0, offset: String(i) },
    txId: null,
    sourceTsMs: 1_700_000_000_000 + i,
    captureTsMs: null,
    newValues: { id: i, notes },
    oldValues: null,
    correlationId: `inventory.items/{"id":${i}}@${1000 + i}`,
  };
}

const text = (chunks: Buffer[]) => Buffer.concat(chunks).toString('utf8');

describe('history rows as COPY text', () => {
  it('come out the same however many chunks a batch takes', () => {
    // Multi-byte characters, a tab and a line break in the values: chunks must not cut or double them.
    const rows = Array.from({ length: 3000 }, (_, i) => row(i, `línea ${i}\t🙂\n`.repeat(40)));
    const chunks = historyCopy('f', rows);
    expect(chunks.length).toBeGreaterThan(2);
    expect(text(chunks)).toBe(rows.map((r) => text(historyCopy('f', [r]))).join(''));
    expect(text(chunks).split('\n').length - 1).toBe(rows.length);
  });

  it('take a value larger than any chunk whole', () => {
    const big = 'x'.repeat(3 << 20);
    const chunks = historyCopy('f', [row(1, 'small'), row(2, big), row(3, 'small')]);
    const lines = text(chunks).split('\n');
    expect(lines).toHaveLength(4);
    expect(lines[1]).toContain(big);
    expect(lines[2]).toContain('"notes":"small"');
  });

  it('start small: a live batch of a few rows does not take a megabyte', () => {
    const [chunk] = historyCopy('f', [row(1, 'small')]);
    expect(chunk!.buffer.byteLength).toBeLessThan(1 << 20);
  });
});
