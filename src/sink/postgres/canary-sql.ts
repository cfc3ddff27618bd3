import type { TableName } from '../../model/table.js';
import { qualified, quoteIdent } from './sql.js';

/** The canary table at a PostgreSQL source (src/observe/canary.ts). */
export function canaryTableSql(t: TableName): string {
  return `CREATE SCHEMA IF NOT EXISTS ${quoteIdent(t.schema)};
CREATE TABLE IF NOT EXISTS ${qualified(t)} (
  id       text PRIMARY KEY,
  sent_at  timestamptz NOT NULL,
  label    text NOT NULL,
  amount   numeric(12,2) NOT NULL,
  tags     jsonb NOT NULL
);`;
}

/** One canary; `clock_timestamp()` is as close to its commit as the statement gets. */
export const INSERT_CANARY = (t: TableName) =>
  `INSERT INTO ${qualified(t)} (id, sent_at, label, amount, tags) VALUES ($1, clock_timestamp(), $2, $3, $4) RETURNING sent_at`;
