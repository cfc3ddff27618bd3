import type pg from 'pg';
import { canaryTableSql } from '../sink/postgres/canary-sql.js';

/**
 * The demo domain: customers and their orders. Chosen to exercise what CDC sinks get wrong:
 * a foreign key, numeric money, timestamptz, JSONB, and a large TEXT column that PostgreSQL
 * stores out of line (TOAST), so an update that leaves it alone carries Debezium's
 * "unavailable value" placeholder instead of the text.
 */
function customersSql(schema: string): string {
  return `
CREATE TABLE IF NOT EXISTS ${schema}.customers (
  id          bigint PRIMARY KEY,
  email       text NOT NULL,
  name        text NOT NULL,
  tier        text NOT NULL DEFAULT 'standard',
  balance     numeric(12,2) NOT NULL DEFAULT 0,
  -- Not '{}': Apicurio 3.0's ccompat API cannot serve an Avro schema whose default is the string "{}".
  profile     jsonb NOT NULL DEFAULT '{"tags": []}'::jsonb,
  notes       text,
  updated_at  timestamptz NOT NULL DEFAULT now()
);`;
}

function ordersSql(schema: string, foreignKey: boolean): string {
  return `
CREATE TABLE IF NOT EXISTS ${schema}.orders (
  id           bigint PRIMARY KEY,
  customer_id  bigint NOT NULL${foreignKey ? ` REFERENCES ${schema}.customers(id) ON DELETE CASCADE` : ''},
  amount       numeric(12,2) NOT NULL,
  status       text NOT NULL DEFAULT 'placed',
  placed_at    timestamptz NOT NULL DEFAULT now()
);`;
}

export function demoSchemaSql(schema: string): string {
  return `
CREATE SCHEMA IF NOT EXISTS ${schema};
${customersSql(schema)}
${canaryTableSql({ schema, table: 'trustsync_canary' })}
ALTER TABLE ${schema}.customers ALTER COLUMN notes SET STORAGE EXTERNAL;
${ordersSql(schema, true)}
-- orders carry full before-images; customers keep the default identity (key only), as most sources do.
ALTER TABLE ${schema}.orders REPLICA IDENTITY FULL;
`;
}

/**
 * The destination's copy: the same columns and types, no foreign key — each table is fed from its
 * own topic, so an order may land before its customer.
 */
export function demoDestinationSql(schema: string): string {
  return `CREATE SCHEMA IF NOT EXISTS ${schema};${customersSql(schema)}${ordersSql(schema, false)}${canaryTableSql({ schema, table: 'trustsync_canary' })}`;
}

export async function createDemoSchema(client: pg.Client, schema = 'demo'): Promise<void> {
  await client.query(demoSchemaSql(schema));
}

/** A note large enough to be TOASTed (PostgreSQL moves values over ~2 kB out of line). */
export function largeNote(id: number, version: number | string): string {
  return `customer ${id} note v${version}: ` + 'lorem ipsum dolor sit amet '.repeat(200);
}

/**
 * The shop in MariaDB, as a MariaDB user would declare it: money as DECIMAL, instants as DATETIME(6)
 * (trustsync writes them in UTC), JSON, the long note as LONGTEXT; no foreign key, as above.
 */
export function demoMariadbDestinationSql(database: string): string[] {
  return [
    `CREATE DATABASE IF NOT EXISTS \`${database}\` CHARACTER SET utf8mb4`,
    `CREATE TABLE IF NOT EXISTS \`${database}\`.customers (
      id BIGINT PRIMARY KEY, email VARCHAR(320) NOT NULL, name VARCHAR(200) NOT NULL, tier VARCHAR(32) NOT NULL DEFAULT 'standard',
      balance DECIMAL(12,2) NOT NULL DEFAULT 0, profile JSON NOT NULL, notes LONGTEXT, updated_at DATETIME(6) NOT NULL)`,
    `CREATE TABLE IF NOT EXISTS \`${database}\`.orders (
      id BIGINT PRIMARY KEY, customer_id BIGINT NOT NULL, amount DECIMAL(12,2) NOT NULL, status VARCHAR(32) NOT NULL DEFAULT 'placed',
      placed_at DATETIME(6) NOT NULL)`,
    `CREATE TABLE IF NOT EXISTS \`${database}\`.trustsync_canary (
      id VARCHAR(64) PRIMARY KEY, sent_at DATETIME(6) NOT NULL, label VARCHAR(200) NOT NULL, amount DECIMAL(12,2) NOT NULL, tags JSON NOT NULL)`,
  ];
}
