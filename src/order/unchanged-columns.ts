import { UNAVAILABLE_VALUE, type ChangeEvent, type Row } from '../model/change.js';
import { positionRank } from './position.js';

/**
 * Debezium sends a TOASTed column an update did not change as a placeholder, not its value. A row
 * written from such a change keeps, for that column, the value of an older change; the ledger keeps
 * the position of the change that set it (`held`: column → rank). A change older than the row but
 * newer than that position, arriving late, carries the value the source really had: it fills the
 * column. Nothing older than the held position ever does, so a filled value never moves backwards.
 */

/** A change as the destination sees it: its row mapped to destination columns. */
export interface Carrier {
  event: ChangeEvent;
  row: Row;
}

/** The placeholder columns of a mapped row: the ones a write must leave as they are. */
export function unchangedColumns(row: Row, has: (column: string) => boolean): string[] {
  return Object.keys(row).filter((c) => row[c] === UNAVAILABLE_VALUE && has(c));
}

/** The rank stored before any change of a key set a column: every change, snapshot reads included, is newer. */
export const NEVER_SET = -1n;

/**
 * Which held columns these changes of one key fill: per column, the newest change that carried a
 * value, newer than the held position and older than the row's own. Returns column → the change.
 */
export function columnFills(held: Readonly<Record<string, string>>, rowRank: bigint, carriers: readonly Carrier[]): Map<string, Carrier> {
  const fills = new Map<string, { carrier: Carrier; rank: bigint }>();
  for (const carrier of carriers) {
    if (carrier.event.op === 'd') continue;
    const rank = positionRank(carrier.event.position);
    if (rank >= rowRank) continue;
    for (const [column, heldRank] of Object.entries(held)) {
      const value = carrier.row[column];
      if (value === undefined || value === UNAVAILABLE_VALUE || rank <= BigInt(heldRank)) continue;
      const best = fills.get(column);
      if (!best || rank > best.rank) fills.set(column, { carrier, rank });
    }
  }
  return new Map([...fills].map(([column, f]) => [column, f.carrier]));
}
