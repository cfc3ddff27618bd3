import type { Pool } from 'mariadb';
import type { TableName } from '../../model/table.js';
import type { CanonicalRows } from '../sink.js';
import { qualified, quoteIdent } from './sql.js';
import { readTableShape } from './mariadb-sink.js';

/** A column's canonical text (sink.ts, CanonicalRows), in MariaDB (sessions in UTC). */
function canonical(column: string, type: string): string {
  const q = quoteIdent(column);
  const base = type.toLowerCase();
  if (/^(datetime|timestamp)/.test(base)) return `DATE_FORMAT(${q}, '%Y-%m-%d %H:%i:%s.%f')`;
  if (base.startsWith('time')) return `TIME_FORMAT(${q}, '%H:%i:%s.%f')`;
  if (/^(binary|varbinary|tinyblob|blob|mediumblob|longblob)/.test(base)) return `LOWER(HEX(${q}))`;
  return `CAST(${q} AS CHAR)`;
}

function rowsSql(types: ReadonlyMap<string, string>, key: readonly string[], values: readonly string[], buckets: number) {
  const keyText = key.length === 1 ? canonical(key[0]!, types.get(key[0]!)!) : `CONCAT_WS(',', ${key.map((c) => canonical(c, types.get(c)!)).join(', ')})`;
  const vals = values.map((c) => canonical(c, types.get(c)!));
  const encoded = [keyText, ...vals.map((v) => `COALESCE(CONCAT(CHAR_LENGTH(${v}), ':', ${v}), '~')`)];
  return {
    keyText,
    vals,
    bucket: `((CONV(SUBSTR(MD5(${keyText}), 1, 8), 16, 10) & 2147483647) % ${buckets})`,
    hash: `MD5(CONCAT_WS('|', ${encoded.join(', ')}))`,
  };
}

/** MariaDB's side of a reconcile across kinds. */
export function mariadbCanonicalRows(pool: Pool): CanonicalRows {
  const typesOf = async (t: TableName) => (await readTableShape(pool, t))?.columns ?? new Map<string, string>();
  return {
    async shape(t) {
      return (await readTableShape(pool, t)) ?? undefined;
    },
    async estimateRows(t) {
      const rows: { n: bigint | number | null }[] = await pool.query(
        'SELECT TABLE_ROWS AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?',
        [t.schema, t.table],
      );
      return Number(rows[0]?.n ?? 0);
    },
    async bucketDigests(t, key, values, buckets) {
      const sql = rowsSql(await typesOf(t), key, values, buckets);
      const rows: { b: bigint | number; n: bigint | number; digest: string }[] = await pool.query(
        `SELECT b, COUNT(*) AS n, CAST(SUM(CAST(CONV(SUBSTR(h, 1, 15), 16, 10) AS UNSIGNED)) AS CHAR) AS digest
           FROM (SELECT ${sql.bucket} AS b, ${sql.hash} AS h FROM ${qualified(t)}) x GROUP BY b`,
      );
      return new Map(rows.map((r) => [Number(r.b), { rows: Number(r.n), digest: r.digest }]));
    },
    async bucketRows(t, key, values, buckets, which) {
      if (which.length === 0) return new Map();
      const sql = rowsSql(await typesOf(t), key, values, buckets);
      const rows: (string | null)[][] = await pool.query(
        {
          sql: `SELECT ${[sql.keyText, ...sql.vals].join(', ')} FROM ${qualified(t)} WHERE ${sql.bucket} IN (${which.map(() => '?').join(', ')})`,
          rowsAsArray: true,
        },
        [...which],
      );
      return new Map(rows.map((r) => [r[0]!, r.slice(1)]));
    },
  };
}
