import { NETWORK_ERROR_CODES, RowRejected, TransientSinkError, TrustsyncError, UNTRUSTED_CERTIFICATE } from '../../model/errors.js';

/**
 * SQLSTATEs after which the same write can succeed later: the server went away, was shutting down,
 * ran out of connections, or chose this transaction as a deadlock or serialization victim.
 */
const TRANSIENT_SQLSTATE_CLASSES = ['08', '53', '57', '58'];
const TRANSIENT_SQLSTATES = new Set(['40001', '40P01', '55P03', '55006', '25P03']);
/** The server refuses the user, its password, the database or a privilege: the URL or the grants are wrong. */
const ACCESS_SQLSTATE_CLASSES = ['28'];
const ACCESS_SQLSTATES = new Set(['3D000', '42501']);

/** The row's data is what the server refuses: wrong type or format, or a constraint. */
const DATA_SQLSTATE_CLASSES = ['22', '23'];

export function isTransientPgError(err: unknown): boolean {
  const e = err as { code?: string; message?: string };
  if (typeof e?.code === 'string') {
    if (NETWORK_ERROR_CODES.has(e.code)) return true;
    if (e.code.length === 5 && (TRANSIENT_SQLSTATES.has(e.code) || TRANSIENT_SQLSTATE_CLASSES.includes(e.code.slice(0, 2)))) return true;
  }
  return /Connection terminated|connection (?:is )?closed|Client has encountered a connection error|timeout exceeded when trying to connect/i.test(
    e?.message ?? '',
  );
}

export function isRowDataPgError(err: unknown): boolean {
  const code = (err as { code?: string })?.code;
  return typeof code === 'string' && code.length === 5 && DATA_SQLSTATE_CLASSES.includes(code.slice(0, 2));
}

/** Wraps a PostgreSQL failure in trustsync's error type so the caller knows whether to retry. */
export function classifyPgError(err: unknown, what: string): Error {
  const e = err as { code?: string; message?: string; detail?: string; path?: string; syscall?: string };
  if ((typeof e?.code === 'string' && UNTRUSTED_CERTIFICATE.test(e.code)) || /server does not support SSL/i.test(e?.message ?? ''))
    return new TrustsyncError('tls-refused', `${what}: TLS to the server failed (${e.code ?? e.message})`, false, {
      cause: err,
      family: 'config',
      fix: "check sslmode and sslrootcert in the flow file's URL for this server (destination.url, or source.database): sslrootcert names the CA that signed the server's certificate",
    });
  if (e?.code === 'ENOENT' && e.syscall === 'open' && e.path)
    return new TrustsyncError('tls-file', `${what}: ${e.path} cannot be read`, false, {
      cause: err,
      family: 'config',
      fix: "name a readable file in the URL's sslrootcert, sslcert or sslkey (destination.url, or source.database)",
    });
  const text = `${what}: ${e?.message ?? String(err)}${e?.code ? ` (SQLSTATE ${e.code})` : ''}${e?.detail ? ` — ${e.detail}` : ''}`;
  if (isTransientPgError(err)) return new TransientSinkError(text, err);
  if (isRowDataPgError(err)) return new RowRejected(text, err);
  if (typeof e?.code === 'string' && (ACCESS_SQLSTATES.has(e.code) || ACCESS_SQLSTATE_CLASSES.includes(e.code.slice(0, 2)))) {
    return new TrustsyncError('access-refused', text, false, {
      cause: err,
      family: 'config',
      fix: "check the user, password and database in the flow file's URL for this server (destination.url, or source.database) and the user's privileges, then start again.",
    });
  }
  return err instanceof Error ? err : new Error(text);
}
