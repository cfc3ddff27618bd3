import type { FieldType, Row } from './change.js';

/** A destination table. */
export interface TableName {
  schema: string;
  table: string;
}

/** `schema.table` as given in a flow file (`public` when no schema is named). */
export function parseTableName(qualified: string): TableName {
  const dot = qualified.indexOf('.');
  return dot < 0 ? { schema: 'public', table: qualified } : { schema: qualified.slice(0, dot), table: qualified.slice(dot + 1) };
}

/** The table as `schema.table`: how history, the ledger and explain name it. */
export function targetName(t: TableName): string {
  return `${t.schema}.${t.table}`;
}

/**
 * A compacted topic holding each record's current state as Avro (Confluent wire format, schema in
 * the registry), keyed by the record's key: what analysts read with standard tools.
 */
export interface StateTopicSpec {
  topic: string;
  /** The Avro record schema, as parsed from the .avsc file. */
  schema: Record<string, unknown>;
  /** Where the schema came from, for messages. */
  schemaFile: string;
}

/** How one source topic lands in one destination table. */
export interface TableMapping {
  topic: string;
  table: TableName;
  /** Destination key columns; by default the event key's fields (renamed). */
  keyColumns?: string[];
  /** Source columns to keep (all when absent) and to drop. */
  include?: string[];
  exclude?: string[];
  /** Source column → destination column. */
  rename: Record<string, string>;
  createIfMissing: boolean;
  /** The entity policy the table is governed by, if any (flow file: policies). */
  policy?: string;
  /** The compacted topic the table's current rows are published to, if any. */
  state?: StateTopicSpec;
  /** The captured source table as schema.table (reconcile compares with it). */
  sourceTable?: string;
  /** latest (default): only a batch's newest change per key is written; every: each change, in source order (kinds with everyChange). */
  deliver?: 'latest' | 'every';
}

const passesThrough = new WeakMap<TableMapping, boolean>();

/**
 * Whether a mapping keeps every source column under its own name, as most do: rows and field types
 * then pass as they are (read, never changed), with no copy per change.
 */
function keepsSourceShape(m: TableMapping): boolean {
  let keeps = passesThrough.get(m);
  if (keeps === undefined) passesThrough.set(m, (keeps = !m.include && !m.exclude?.length && Object.keys(m.rename).length === 0));
  return keeps;
}

/** Applies source column selection and renames to a row. */
export function mapRow(m: TableMapping, row: Row): Row {
  if (keepsSourceShape(m)) return row;
  const out: Row = {};
  for (const [name, value] of Object.entries(row)) {
    if (m.include && !m.include.includes(name)) continue;
    if (m.exclude?.includes(name)) continue;
    out[m.rename[name] ?? name] = value;
  }
  return out;
}

/** Applies renames to a row's field types. */
export function mapFields(m: TableMapping, fields: Record<string, FieldType> | null): Record<string, FieldType> {
  if (!fields) return {};
  if (keepsSourceShape(m)) return fields;
  const out: Record<string, FieldType> = {};
  for (const [name, f] of Object.entries(fields)) out[m.rename[name] ?? name] = f;
  return out;
}
