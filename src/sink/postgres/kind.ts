import pg from 'pg';
import type { SinkKind } from '../sink.js';
import { POSTGRES_CAPABILITIES, PostgresSink } from './postgres-sink.js';
import { PostgresSource } from './source-database.js';

/** PostgreSQL: every capability; ledger, rows and history in one transaction. */
export const postgresKind: SinkKind = {
  kind: 'postgres',
  schemes: ['postgres:', 'postgresql:'],
  capabilities: POSTGRES_CAPABILITIES,
  open(url, options) {
    // The application name shows whose sessions these are in pg_stat_activity.
    const pool = new pg.Pool({ connectionString: url, max: options.connections, connectionTimeoutMillis: 10_000, application_name: options.name.slice(0, 63) });
    // An idle client that loses its server must not crash the process; the next checkout fails and is retried.
    pool.on('error', (err) => options.onConnectionLost?.(err));
    return new PostgresSink(pool);
  },
  openSource: (url, options) => PostgresSource.open(url, options),
};
