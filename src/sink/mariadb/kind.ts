import mariadb, { type PoolConfig } from 'mariadb';
import { TrustsyncError } from '../../model/errors.js';
import type { SinkKind, SinkOptions } from '../sink.js';
import { MARIADB_CAPABILITIES, MariadbSink } from './mariadb-sink.js';

/**
 * Every session: instants in UTC (DATETIME holds no zone), strict mode (a value that does not fit is
 * an error, not a warning and a mangled value), READ COMMITTED (no gap locks between lanes writing
 * neighbouring keys; the ledger's row locks order writers of one key).
 */
const SESSION = [
  "SET time_zone = '+00:00'",
  "SET sql_mode = 'STRICT_ALL_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION'",
  'SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED',
];

/** The connector's pool options for a `mariadb://` or `mysql://` URL (user, password, host, port, database). */
export function poolOptions(url: string, options: Pick<SinkOptions, 'name' | 'connections'>): PoolConfig {
  let u: URL | undefined;
  try {
    u = new URL(url);
  } catch {
    u = undefined;
  }
  // The URL itself is not quoted: it may hold the password.
  if (!u?.hostname)
    throw new TrustsyncError('bad-url', 'destination.url: not a MariaDB URL with a host', false, {
      family: 'config',
      fix: 'write it as mariadb://user:password@host:3306/database',
    });
  return {
    host: u.hostname.replace(/^\[|\]$/g, ''),
    port: u.port ? Number(u.port) : 3306,
    user: decodeURIComponent(u.username) || 'root',
    password: decodeURIComponent(u.password) || undefined,
    database: decodeURIComponent(u.pathname.slice(1)) || undefined,
    connectionLimit: options.connections,
    acquireTimeout: 10_000,
    connectTimeout: 10_000,
    // Values exactly as stored: DATETIME as text (in UTC), BIGINT as BigInt, DECIMAL as text.
    dateStrings: true,
    bigIntAsNumber: false,
    decimalAsNumber: false,
    charset: 'utf8mb4',
    initSql: SESSION,
    // Shows whose sessions these are in the server's processlist attributes.
    connectAttributes: { program_name: options.name.slice(0, 63) },
  };
}

/**
 * MariaDB (and MySQL's wire protocol): ledger, rows and history in one transaction. The driver is
 * MariaDB's own connector: it speaks MariaDB's protocol extensions, and hands back DECIMAL and
 * BIGINT exactly (text, BigInt) without options that round them.
 */
export const mariadbKind: SinkKind = {
  kind: 'mariadb',
  schemes: ['mariadb:', 'mysql:'],
  capabilities: MARIADB_CAPABILITIES,
  open(url, options) {
    return new MariadbSink(mariadb.createPool(poolOptions(url, options)));
  },
};
