import type pg from 'pg';
import type { Pool } from 'mariadb';

/*
 * Row-by-row comparison of a PostgreSQL table with a MariaDB table, each value as one canonical
 * text both engines produce: instants in UTC with microseconds, booleans as 1/0, the rest as each
 * engine's text of it (numeric and JSON text pass through unchanged).
 */

type Rows = Map<string, Record<string, string | null>>;

async function postgresRows(db: pg.Client, schema: string, table: string, columns: readonly string[]): Promise<Rows> {
  const types = new Map(
    (
      await db.query<{ name: string; type: string }>(
        `SELECT column_name AS name, data_type AS type FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2`,
        [schema, table],
      )
    ).rows.map((r) => [r.name, r.type]),
  );
  const canonical = (c: string) => {
    const type = types.get(c);
    if (type === 'timestamp with time zone') return `to_char("${c}" AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')`;
    if (type === 'boolean') return `CASE WHEN "${c}" THEN '1' ELSE '0' END`;
    return `"${c}"::text`;
  };
  const { rows } = await db.query(`SELECT id::text AS id, ${columns.map((c) => `${canonical(c)} AS "${c}"`).join(', ')} FROM ${schema}.${table}`);
  return new Map(rows.map((r) => [r.id, Object.fromEntries(columns.map((c) => [c, r[c]]))]));
}

async function mariadbRows(db: Pool, database: string, table: string, columns: readonly string[]): Promise<Rows> {
  const rows: Record<string, string | null>[] = await db.query(
    `SELECT CAST(id AS CHAR) AS id, ${columns.map((c) => `CAST(\`${c}\` AS CHAR) AS \`${c}\``).join(', ')} FROM \`${database}\`.\`${table}\``,
  );
  return new Map(rows.map((r) => [r.id!, Object.fromEntries(columns.map((c) => [c, r[c] ?? null]))]));
}

export interface CrossDiff {
  missing: string[];
  extra: string[];
  wrong: { id: string; column: string; source: string | null; destination: string | null }[];
}

export async function compareAcross(source: pg.Client, sourceTable: string, dest: Pool, destTable: string, columns: readonly string[]): Promise<CrossDiff> {
  const [schema, table] = sourceTable.split('.') as [string, string];
  const [database, destName] = destTable.split('.') as [string, string];
  let dst: Rows;
  try {
    dst = await mariadbRows(dest, database, destName, columns);
  } catch (err) {
    if ((err as { errno?: number }).errno !== 1146) throw err; // not created yet
    dst = new Map();
  }
  const src = await postgresRows(source, schema, table, columns);
  const diff: CrossDiff = { missing: [], extra: [], wrong: [] };
  for (const [id, row] of src) {
    const other = dst.get(id);
    if (!other) diff.missing.push(id);
    else for (const c of columns) if (row[c] !== other[c]) diff.wrong.push({ id, column: c, source: row[c]!, destination: other[c]! });
  }
  for (const id of dst.keys()) if (!src.has(id)) diff.extra.push(id);
  return diff;
}

/** Waits until every MariaDB table equals its PostgreSQL source, row for row and value for value. */
export async function waitForCrossConvergence(
  source: pg.Client,
  dest: Pool,
  pairs: readonly { source: string; destination: string; columns: readonly string[] }[],
  timeoutMs = 60_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const diffs = await Promise.all(pairs.map((p) => compareAcross(source, p.source, dest, p.destination, p.columns)));
    if (diffs.every((d) => d.missing.length + d.extra.length + d.wrong.length === 0)) return;
    if (Date.now() > deadline) throw new Error(`the MariaDB destination did not converge within ${timeoutMs / 1000}s: ${JSON.stringify(diffs).slice(0, 2000)}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}
