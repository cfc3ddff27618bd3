import pg from 'pg';
import type { SinkOptions } from '../sink.js';

/** A pool of connections to a PostgreSQL database, as every part of the PostgreSQL kind opens one. */
export function openPool(url: string, options: SinkOptions): pg.Pool {
  // The application name shows whose sessions these are in pg_stat_activity.
  const pool = new pg.Pool({ connectionString: url, max: options.connections, connectionTimeoutMillis: 10_000, application_name: options.name.slice(0, 63) });
  // An idle client that loses its server must not crash the process; the next checkout fails and is retried.
  pool.on('error', (err) => options.onConnectionLost?.(err));
  return pool;
}
