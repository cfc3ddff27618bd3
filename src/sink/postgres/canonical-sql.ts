import type pg from 'pg';
import type { TableName } from '../../model/table.js';
import type { CanonicalRows } from '../sink.js';
import { keyTextExpr, qualified, quoteIdent } from './sql.js';
import { readTableShape } from './postgres-sink.js';

/** The same bucket for the same key text in every database: from md5 of it, not a version-dependent hash. */
const bucketOf = (keyText: string, buckets: number) => `((('x' || substr(md5(${keyText}), 1, 8))::bit(32)::int & 2147483647) % ${buckets})`;

/** A column's canonical text (sink.ts, CanonicalRows), in PostgreSQL. */
function canonical(column: string, type: string): string {
  const q = `t.${quoteIdent(column)}`;
  if (type.startsWith('timestamp with time zone')) return `to_char(${q} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')`;
  if (type.startsWith('timestamp')) return `to_char(${q}, 'YYYY-MM-DD HH24:MI:SS.US')`;
  if (type.startsWith('time without')) return `to_char(date '2000-01-01' + ${q}, 'HH24:MI:SS.US')`;
  if (type === 'boolean') return `CASE WHEN ${q} THEN '1' WHEN NOT ${q} THEN '0' END`;
  if (type === 'bytea') return `encode(${q}, 'hex')`;
  return `${q}::text`;
}

/** The SQL of a table's rows in canonical text: key text, bucket, row hash, values. */
function rowsSql(types: ReadonlyMap<string, string>, key: readonly string[], values: readonly string[], buckets: number) {
  const keyText = key.length === 1 ? canonical(key[0]!, types.get(key[0]!)!) : `concat_ws(',', ${key.map((c) => canonical(c, types.get(c)!)).join(', ')})`;
  const vals = values.map((c) => canonical(c, types.get(c)!));
  // Length-prefixed, so no value can pass for two; '~' is NULL.
  const encoded = [keyText, ...vals.map((v) => `coalesce(length(${v})::text || ':' || ${v}, '~')`)];
  return {
    keyText,
    vals,
    bucket: bucketOf(keyText, buckets),
    hash: `md5(concat_ws('|', ${encoded.join(', ')}))`,
  };
}

async function shapeOf(db: pg.Pool, t: TableName) {
  const shape = await readTableShape(db, t);
  return shape ? { columns: shape.columns, keyColumns: shape.keyColumns } : undefined;
}

/** From the planner's statistics: no scan. */
async function estimateRows(db: pg.Pool, t: TableName): Promise<number> {
  const { rows } = await db.query<{ n: string }>('SELECT greatest(reltuples, 0)::bigint AS n FROM pg_class WHERE oid = $1::regclass', [qualified(t)]);
  return Number(rows[0]?.n ?? 0);
}

/**
 * PostgreSQL's side of a reconcile with PostgreSQL: every value in PostgreSQL's own text (what a
 * repair copies), keys as JSON text (as the ledger names them), each bucket an md5 of its rows in key order.
 */
export function postgresNativeRows(db: pg.Pool): CanonicalRows {
  const texts = (values: readonly string[]) => values.map((c) => `t.${quoteIdent(c)}::text`);
  return {
    shape: (t) => shapeOf(db, t),
    estimateRows: (t) => estimateRows(db, t),
    async bucketDigests(t, key, values, buckets) {
      const k = keyTextExpr(key);
      const { rows } = await db.query<{ b: number; n: string; digest: string }>(
        `SELECT b, count(*) AS n, md5(string_agg(h, '' ORDER BY k)) AS digest
           FROM (SELECT ${k} AS k, ${bucketOf(k, buckets)} AS b, md5(${k} || json_build_array(${texts(values).join(', ')})::text) AS h FROM ${qualified(t)} t) x
          GROUP BY b`,
      );
      return new Map(rows.map((r) => [Number(r.b), { rows: Number(r.n), digest: r.digest }]));
    },
    async bucketRows(t, key, values, buckets, which) {
      if (which.length === 0) return new Map();
      const k = keyTextExpr(key);
      const { rows } = await db.query<{ k: string; v: (string | null)[] }>(
        `SELECT ${k} AS k, ARRAY[${texts(values).join(', ') || 'NULL::text'}] AS v FROM ${qualified(t)} t WHERE ${bucketOf(k, buckets)} = ANY($1::int[])`,
        [which],
      );
      return new Map(rows.map((r) => [r.k, r.v]));
    },
  };
}

/** PostgreSQL's side of a reconcile across kinds. */
export function postgresCanonicalRows(db: pg.Pool): CanonicalRows {
  const typesOf = async (t: TableName) => (await readTableShape(db, t))?.columns ?? new Map<string, string>();
  return {
    shape: (t) => shapeOf(db, t),
    estimateRows: (t) => estimateRows(db, t),
    async bucketDigests(t, key, values, buckets) {
      const sql = rowsSql(await typesOf(t), key, values, buckets);
      const { rows } = await db.query<{ b: number; n: string; digest: string }>(
        `SELECT b, count(*) AS n, sum(('x' || substr(h, 1, 15))::bit(60)::bigint)::text AS digest
           FROM (SELECT ${sql.bucket} AS b, ${sql.hash} AS h FROM ${qualified(t)} t) x GROUP BY b`,
      );
      return new Map(rows.map((r) => [Number(r.b), { rows: Number(r.n), digest: r.digest }]));
    },
    async bucketRows(t, key, values, buckets, which) {
      if (which.length === 0) return new Map();
      const sql = rowsSql(await typesOf(t), key, values, buckets);
      const { rows } = await db.query<{ k: string; v: (string | null)[] }>(
        `SELECT ${sql.keyText} AS k, ARRAY[${sql.vals.join(', ') || 'NULL::text'}]::text[] AS v FROM ${qualified(t)} t WHERE ${sql.bucket} = ANY($1::int[])`,
        [which],
      );
      return new Map(rows.map((r) => [r.k, r.v]));
    },
  };
}
