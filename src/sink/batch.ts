import { UNAVAILABLE_VALUE, type ChangeEvent, type FieldType, type Row } from '../model/change.js';
import type { RowDecision } from '../model/decision.js';
import { SchemaIncompatible, type RowRejected } from '../model/errors.js';
import { mapFields, mapRow, targetName, type TableMapping, type TableName } from '../model/table.js';
import { positionRank } from '../order/position.js';
import { columnFills, type Carrier } from '../order/unchanged-columns.js';

/*
 * What every SQL destination does with a batch the same way, whatever its dialect: which columns the
 * rows need, which statement each row goes in, how a refused row is isolated, what a TOASTed column
 * is filled with.
 */

/** A destination table's columns (name → the database's type, in order) and primary key. */
export interface TableShape {
  columns: Map<string, string>;
  keyColumns: string[];
}

/**
 * Tables' shapes, read from the catalog once and again when asked to (a column may have been added).
 * A missing table is read again each time: another process may create it.
 */
export class TableShapes {
  private readonly known = new Map<string, TableShape>();

  constructor(private readonly read: (t: TableName) => Promise<TableShape | null>) {}

  async get(t: TableName, refresh = false): Promise<TableShape | null> {
    const name = targetName(t);
    const cached = refresh ? undefined : this.known.get(name);
    if (cached) return cached;
    const shape = await this.read(t);
    if (shape) this.known.set(name, shape);
    else this.known.delete(name);
    return shape;
  }

  /** The table's columns now, or undefined while it does not exist. */
  async columnsOf(t: TableName): Promise<string[] | undefined> {
    const shape = await this.get(t, true);
    return shape ? [...shape.columns.keys()] : undefined;
  }
}

/**
 * The columns a batch's rows carry (TOAST placeholders say nothing), each with the type `typeFor`
 * gives it, and the source's field types of those it describes.
 */
export function wantedColumns(
  m: TableMapping,
  events: readonly ChangeEvent[],
  typeFor: (name: string, field: FieldType | undefined, value: unknown) => string,
): { wanted: Map<string, string>; sourceFields: Map<string, FieldType> } {
  const wanted = new Map<string, string>();
  const sourceFields = new Map<string, FieldType>();
  for (const e of events) {
    const fields = mapFields(m, e.fields);
    const row = mapRow(m, e.after ?? e.key);
    // Own keys only: an Avro row is a record instance whose prototype's methods are enumerable.
    for (const name of Object.keys(row)) {
      const value = row[name];
      if (value === UNAVAILABLE_VALUE) continue;
      const field = fields[name];
      if (field) sourceFields.set(name, field);
      if (!wanted.has(name) && (field || value !== null)) wanted.set(name, typeFor(name, field, value));
    }
  }
  return { wanted, sourceFields };
}

/** How a destination undoes part of a transaction, and tells a row's data error from any other. */
export interface RowIsolation {
  mark(): Promise<unknown>;
  release(): Promise<unknown>;
  rollBack(): Promise<unknown>;
  isRowError(err: unknown): boolean;
  rejected(err: unknown, e: ChangeEvent): RowRejected;
}

/**
 * Applies a set of rows; when the database refuses one for its data, undoes the attempt and splits
 * the set in halves until the refused rows stand alone: they are reported rejected and every other
 * row still applies, in the same transaction.
 */
export async function applyIsolating(set: ChangeEvent[], apply: (part: ChangeEvent[]) => Promise<RowDecision[]>, how: RowIsolation): Promise<RowDecision[]> {
  await how.mark();
  try {
    const decisions = await apply(set);
    await how.release();
    return decisions;
  } catch (err) {
    if (!how.isRowError(err)) throw err;
    await how.rollBack();
    await how.release();
    if (set.length === 1) return [{ decision: 'rejected', event: set[0]!, error: how.rejected(err, set[0]!) }];
    const half = Math.ceil(set.length / 2);
    return [...(await applyIsolating(set.slice(0, half), apply, how)), ...(await applyIsolating(set.slice(half), apply, how))];
  }
}

export interface UpsertGroup {
  columns: string[];
  /** Snapshot reads never overwrite a row that exists. */
  onlyIfAbsent: boolean;
  rows: { row: Row; fields: Record<string, FieldType> }[];
}

/** Winning rows by the columns they carry (TOAST placeholders, columns added mid-batch) and snapshot or not: one statement each. */
export function upsertGroups(m: TableMapping, winners: readonly { event: ChangeEvent; row: Row }[], has: (column: string) => boolean): UpsertGroup[] {
  const groups = new Map<string, UpsertGroup>();
  for (const { event, row } of winners) {
    const columns = Object.keys(row).filter((c) => row[c] !== UNAVAILABLE_VALUE && has(c));
    const onlyIfAbsent = event.position.snapshot;
    const signature = `${onlyIfAbsent}|${columns.join(',')}`;
    let g = groups.get(signature);
    if (!g) groups.set(signature, (g = { columns, onlyIfAbsent, rows: [] }));
    g.rows.push({ row, fields: mapFields(m, event.fields) });
  }
  return [...groups.values()];
}

/** Carriers of column values by key: each change's mapped row. */
export function carriersByKey(m: TableMapping, candidates: readonly ChangeEvent[]): Map<string, Carrier[]> {
  const byKey = new Map<string, Carrier[]>();
  for (const e of candidates) {
    let carriers = byKey.get(e.keyText);
    if (!carriers) byKey.set(e.keyText, (carriers = []));
    if (e.after) carriers.push({ event: e, row: mapRow(m, e.after) });
  }
  return byKey;
}

export interface Fill {
  /** The key's held column positions after the fill. */
  held: Record<string, string>;
  /** Column → the value to set, with its source field type where known. */
  values: Row;
  fields: Record<string, FieldType>;
  decisions: RowDecision[];
}

/**
 * What one key's TOASTed columns get: for each column the row left unchanged, the newest carrier
 * newer than the change that set the stored value (unchanged-columns.ts); null when nothing fills.
 */
export function planFill(m: TableMapping, heldBefore: Record<string, string>, rowPosition: string, carriers: readonly Carrier[]): Fill | null {
  const fills = columnFills(heldBefore, BigInt(rowPosition), carriers);
  if (fills.size === 0) return null;
  const held = { ...heldBefore };
  const byCarrier = new Map<Carrier, string[]>();
  for (const [column, carrier] of fills) {
    held[column] = positionRank(carrier.event.position).toString();
    byCarrier.set(carrier, [...(byCarrier.get(carrier) ?? []), column]);
  }
  const values: Row = {};
  const fields: Record<string, FieldType> = {};
  const decisions: RowDecision[] = [];
  for (const [carrier, columns] of byCarrier) {
    const carrierFields = mapFields(m, carrier.event.fields);
    for (const c of columns) {
      values[c] = carrier.row[c];
      if (carrierFields[c]) fields[c] = carrierFields[c];
    }
    // History tells values by their source names, as for applied changes.
    const told = Object.entries(carrier.event.after!).filter(([name]) => columns.includes(m.rename[name] ?? name));
    decisions.push({ decision: 'filled', event: carrier.event, columns, values: Object.fromEntries(told), rowPosition });
  }
  return { held, values, fields, decisions };
}

/**
 * Stops before a write that would lose data or cannot be an upsert: a column the source now sends
 * values the destination's type cannot hold, or a table without a primary key.
 */
export function refuseUnfollowable(
  m: TableMapping,
  shape: { columns: ReadonlyMap<string, string>; keyColumns: readonly string[] },
  sourceFields: ReadonlyMap<string, FieldType>,
  dialect: { accepts(existing: string, field: FieldType): boolean; typeFor(field: FieldType): string; addPrimaryKey: string },
): void {
  for (const [name, field] of sourceFields) {
    const existing = shape.columns.get(name);
    if (existing && !dialect.accepts(existing, field)) {
      throw new SchemaIncompatible(
        `${targetName(m.table)}.${name} is ${existing} but the source now sends ${field.name ?? field.type}: writing it would lose data.`,
        `alter the destination column to a type that holds ${dialect.typeFor(field)} (or exclude the column in the flow file), then restart the flow.`,
      );
    }
  }
  if (shape.keyColumns.length === 0)
    throw new SchemaIncompatible(`destination table ${targetName(m.table)} has no primary key: upserts need one.`, `add one: ${dialect.addPrimaryKey}.`);
}
