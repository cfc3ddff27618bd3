import type { SinkKind } from '../sink.js';
import { openPool } from './pool.js';
import { POSTGRES_CAPABILITIES, PostgresSink } from './postgres-sink.js';
import { PostgresSource } from './source-database.js';

/** PostgreSQL: every capability; ledger, rows and history in one transaction. */
export const postgresKind: SinkKind = {
  kind: 'postgres',
  schemes: ['postgres:', 'postgresql:'],
  capabilities: POSTGRES_CAPABILITIES,
  open: (url, options) => new PostgresSink(openPool(url, options)),
  openSource: (url, options) => new PostgresSource(openPool(url, options)),
};
