import { NETWORK_ERROR_CODES, RowRejected, TransientSinkError, TrustsyncError } from '../../model/errors.js';

/**
 * MariaDB error numbers after which the same write can succeed later: a deadlock victim, a lock
 * wait that timed out, a server gone, shutting down or out of connections, a connection killed.
 */
const TRANSIENT_ERRNOS = new Set([1040, 1053, 1205, 1213, 1927, 2002, 2003, 2006, 2013, 4031]);
/** The server refuses the user, its password, the database or a privilege: the URL or the grants are wrong. */
const ACCESS_ERRNOS = new Set([1044, 1045, 1049, 1142, 1143, 1227, 1370]);
/**
 * The row's data is what the server refuses (strict mode): out of range, too long, wrong format,
 * NULL in NOT NULL, a duplicate on another unique key, a foreign key, a CHECK (JSON validity).
 */
const DATA_ERRNOS = new Set([1048, 1062, 1136, 1264, 1265, 1292, 1366, 1367, 1406, 1411, 1451, 1452, 1690, 3140, 4025]);

interface SqlError {
  errno?: number;
  code?: string;
  sqlState?: string;
  fatal?: boolean;
  text?: string;
  message?: string;
  sqlMessage?: string;
  /** The pool's "no connection" error carries the connection attempt's own error. */
  cause?: SqlError;
}

export function isTransientMariadbError(err: unknown): boolean {
  const e = err as SqlError;
  if (typeof e?.code === 'string' && NETWORK_ERROR_CODES.has(e.code)) return true;
  // The connector marks a connection it can no longer use as fatal (socket closed, pool timeout).
  if (e?.fatal === true && !ACCESS_ERRNOS.has(e.errno ?? 0)) return true;
  if (typeof e?.errno === 'number' && (TRANSIENT_ERRNOS.has(e.errno) || e.errno === 45028)) return true;
  return typeof e?.sqlState === 'string' && e.sqlState.startsWith('08');
}

export function isRowDataMariadbError(err: unknown): boolean {
  const e = err as SqlError;
  return typeof e?.errno === 'number' && DATA_ERRNOS.has(e.errno);
}

/** Wraps a MariaDB failure in trustsync's error type so the caller knows whether to retry. */
export function classifyMariadbError(err: unknown, what: string): Error {
  if (err instanceof TrustsyncError) return err;
  const outer = err as SqlError;
  // The pool's timeout says only that no connection came; the attempt's error says why.
  const e = outer?.errno === 45028 && outer.cause?.errno ? outer.cause : outer;
  const text = `${what}: ${e?.sqlMessage ?? e?.text ?? e?.message ?? String(err)}${e?.errno ? ` (MariaDB error ${e.errno})` : ''}`;
  if (ACCESS_ERRNOS.has(e?.errno ?? 0)) {
    return new TrustsyncError('access-refused', text, false, {
      cause: err,
      family: 'config',
      fix: "check the user, password and database in destination.url, and the user's privileges (it needs the database trustsync too), then start again.",
    });
  }
  if (isTransientMariadbError(err)) return new TransientSinkError(text, err);
  if (isRowDataMariadbError(err)) return new RowRejected(text, err);
  return err instanceof Error ? err : new Error(text);
}
