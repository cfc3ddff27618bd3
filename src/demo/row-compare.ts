import type pg from 'pg';

export interface TableDiff {
  missing: string[];
  extra: string[];
  wrong: string[];
}

/**
 * Row-by-row comparison by primary key `id`: each side hashes its rows inside its own database,
 * so only ids and hashes travel (both tables have the same columns in the same order).
 */
export async function compareTables(source: pg.Client, dest: pg.Client, sourceTable: string, destTable: string): Promise<TableDiff> {
  const read = async (c: pg.Client, t: string) =>
    new Map((await c.query<{ id: string; h: string }>(`SELECT id::text AS id, md5(t::text) AS h FROM ${t} t`)).rows.map((r) => [r.id, r.h]));
  const [src, dst] = await Promise.all([read(source, sourceTable), read(dest, destTable)]);
  const diff: TableDiff = { missing: [], extra: [], wrong: [] };
  for (const [id, h] of src) {
    const other = dst.get(id);
    if (other === undefined) diff.missing.push(id);
    else if (other !== h) diff.wrong.push(id);
  }
  for (const id of dst.keys()) if (!src.has(id)) diff.extra.push(id);
  return diff;
}

const clean = (d: TableDiff) => d.missing.length + d.extra.length + d.wrong.length === 0;

/** Waits until every destination table equals its source table, row for row. */
export async function waitForConvergence(source: pg.Client, dest: pg.Client, pairs: [string, string][], timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: Record<string, TableDiff> = {};
  for (;;) {
    last = {};
    for (const [s, d] of pairs) {
      try {
        last[d] = await compareTables(source, dest, s, d);
      } catch (err) {
        // A destination table the flow has not created yet is simply not there yet.
        if ((err as { code?: string }).code !== '42P01') throw err;
        last[d] = { missing: ['(table missing)'], extra: [], wrong: [] };
      }
    }
    if (Object.values(last).every(clean)) return;
    if (Date.now() > deadline) throw new Error(`destination did not converge within ${timeoutMs / 1000}s: ${JSON.stringify(last).slice(0, 2000)}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}
