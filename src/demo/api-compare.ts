import type pg from 'pg';
import type { AppliedWrite, CrmApi } from './crm-api.js';
import type { TableDiff } from './row-compare.js';

/** An instant as microseconds since the epoch, from ISO text with any number of fraction digits. */
export function isoMicros(text: string): bigint {
  const m = /^(.*?:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:?\d\d)$/.exec(text);
  if (!m) throw new Error(`not an ISO instant: ${text}`);
  const seconds = BigInt(Date.parse(`${m[1]}${m[3]}`)) / 1000n;
  return seconds * 1_000_000n + BigInt((m[2] ?? '').padEnd(6, '0').slice(0, 6));
}

/** The source's customers and orders as the API should hold them, by id. */
async function sourceRecords(source: pg.Client, schema: string): Promise<Record<string, Map<string, Record<string, unknown>>>> {
  const customers = await source.query<Record<string, unknown> & { id: string; updated_at: string }>(
    `SELECT id::text, email, name, tier, balance::text, profile, notes, (extract(epoch from updated_at) * 1000000)::bigint::text AS updated_at FROM ${schema}.customers`,
  );
  const orders = await source.query<Record<string, unknown> & { id: string; placed_at: string }>(
    `SELECT id::text, customer_id::text, amount::text, status, (extract(epoch from placed_at) * 1000000)::bigint::text AS placed_at FROM ${schema}.orders`,
  );
  return {
    customers: new Map(customers.rows.map((r) => [r.id, r])),
    orders: new Map(orders.rows.map((r) => [r.id, r])),
  };
}

/** The API's record in the source's text: numbers and instants as the source query gives them. */
function asSourceText(record: Record<string, unknown>, columns: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const c of columns) {
    const v = record[c];
    if (c === 'updated_at' || c === 'placed_at') out[c] = typeof v === 'string' ? isoMicros(v).toString() : v;
    // A JSON column is JSON with a schema to say so (Avro), its text without one: compared as the JSON it holds.
    else if (c === 'profile') out[c] = JSON.stringify(typeof v === 'string' ? JSON.parse(v) : v);
    else if (typeof v === 'number') out[c] = String(v);
    else out[c] = v ?? null;
  }
  return out;
}

const COLUMNS: Record<string, string[]> = {
  customers: ['id', 'email', 'name', 'tier', 'balance', 'profile', 'notes', 'updated_at'],
  orders: ['id', 'customer_id', 'amount', 'status', 'placed_at'],
};

/**
 * Each collection of the API against the source's table: records held, and ids missing, extra or
 * differing; `kept` names the fields the API owns (by collection), which are not compared.
 */
export async function compareApi(
  source: pg.Client,
  schema: string,
  api: CrmApi,
  kept: Readonly<Record<string, readonly string[]>> = {},
): Promise<{ collection: string; records: number; diff: TableDiff; details: string[] }[]> {
  const expected = await sourceRecords(source, schema);
  const out: { collection: string; records: number; diff: TableDiff; details: string[] }[] = [];
  for (const [collection, rows] of Object.entries(expected)) {
    const held = api.records(collection);
    const diff: TableDiff = { missing: [], extra: [], wrong: [] };
    const details: string[] = [];
    for (const [id, row] of rows) {
      const record = held.get(id);
      if (!record) {
        diff.missing.push(id);
        details.push(`${collection} ${id}: missing at the API`);
        continue;
      }
      const got = asSourceText(record, COLUMNS[collection]!);
      const want: Record<string, unknown> = { ...row, ...(row.profile !== undefined ? { profile: JSON.stringify(row.profile) } : {}) };
      const fields = COLUMNS[collection]!.filter((c) => !kept[collection]?.includes(c) && JSON.stringify(got[c]) !== JSON.stringify(want[c]));
      if (fields.length) diff.wrong.push(id);
      for (const c of fields)
        details.push(`${collection} ${id}.${c}: API ${JSON.stringify(got[c])?.slice(0, 60)}, source ${JSON.stringify(want[c])?.slice(0, 60)}`);
    }
    for (const id of held.keys())
      if (!rows.has(id)) {
        diff.extra.push(id);
        details.push(`${collection} ${id}: at the API, gone at the source`);
      }
    out.push({ collection, records: held.size, diff, details });
  }
  return out;
}

/** Where the API and the source differ, record by record (empty when they are equal). */
export async function apiDifferences(
  source: pg.Client,
  schema: string,
  api: CrmApi,
  kept: Readonly<Record<string, readonly string[]>> = {},
): Promise<string[]> {
  return (await compareApi(source, schema, api, kept)).flatMap((c) => c.details);
}

/**
 * Writes the API applied that took a customer back in time: its updated_at moved backwards. The
 * source moves updated_at forward with every change, so a correct sync never does.
 */
export function staleWrites(writes: readonly AppliedWrite[]): string[] {
  const last = new Map<string, bigint>();
  const stale: string[] = [];
  for (const w of writes) {
    if (w.collection !== 'customers' || typeof w.body?.updated_at !== 'string') continue;
    const at = isoMicros(w.body.updated_at);
    const before = last.get(w.id);
    if (before !== undefined && at < before) stale.push(`customer ${w.id}: updated_at ${before} -> ${at} (${w.method}, key ${w.idempotencyKey})`);
    last.set(w.id, at);
  }
  return stale;
}
