import type { CapturedTable } from '../source.js';

/** The server's WAL level and whether the connected user may stream changes. */
export const CAPTURE_SETTINGS = `
SELECT current_setting('wal_level') AS wal_level, current_user AS username,
       (SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user) AS replication`;

/**
 * Per table ($1 schemas, $2 names): its replica identity, primary key columns in key order, columns,
 * and the columns stored out of line when large (TOAST: storage extended or external).
 */
export const CAPTURED_TABLES = `
SELECT n.nspname AS schema, c.relname AS name, c.relreplident AS identity,
  (SELECT array_agg(a.attname::text ORDER BY k.ord) FROM pg_index i
     CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
     JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
    WHERE i.indrelid = c.oid AND i.indisprimary) AS key,
  (SELECT array_agg(a.attname::text ORDER BY a.attnum) FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) AS columns,
  coalesce((SELECT array_agg(a.attname::text ORDER BY a.attnum) FROM pg_attribute a
     WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attstorage IN ('x', 'e')), '{}'::text[]) AS out_of_line
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN unnest($1::text[], $2::text[]) AS t(schema, name) ON t.schema = n.nspname AND t.name = c.relname
WHERE c.relkind IN ('r', 'p')`;

/** pg_class.relreplident as a word. */
export const REPLICA_IDENTITY: Record<string, CapturedTable['replicaIdentity']> = { d: 'default', f: 'full', i: 'index', n: 'nothing' };
