import { chmodSync, chownSync, copyFileSync, existsSync, mkdirSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { execFileSync } from 'node:child_process';
import pg from 'pg';
import type { StackSettings } from './settings.js';
import { componentFiles, componentPid, type Component, type Health } from './component.js';
import { runCommand, startDetached, isAlive, sleep } from './processes.js';
import { StackError } from '../model/errors.js';
import { ensureStackCertificates } from './tls.js';

/** Databases the stack holds: the demo's source and destination, and the registry's storage. */
export const STACK_DATABASES = ['trustsync_source', 'trustsync_dest', 'trustsync_registry'] as const;

const isRoot = () => process.getuid?.() === 0;

/** PostgreSQL refuses to run as root: as root, the cluster belongs to `postgres` and lives where that user can reach. */
export function postgresDataDir(s: StackSettings, env: NodeJS.ProcessEnv = process.env): string {
  if (env.TRUSTSYNC_PG_DATA) return env.TRUSTSYNC_PG_DATA;
  return isRoot() ? join('/var/tmp/trustsync', `postgres-${s.ports.postgres}`) : join(s.stateDir, 'postgres', 'data');
}

function postgresBinDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.TRUSTSYNC_PG_BIN) return env.TRUSTSYNC_PG_BIN;
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).filter((v) => existsSync(join(root, v, 'bin', 'initdb'))) : [];
  versions.sort((a, b) => Number(b) - Number(a));
  if (versions[0]) return join(root, versions[0], 'bin');
  try {
    return execFileSync('pg_config', ['--bindir'], { encoding: 'utf8' }).trim();
  } catch {
    throw new StackError(
      'PostgreSQL server programs (initdb, postgres) were not found.',
      'install them (e.g. `apt-get install postgresql`) or set TRUSTSYNC_PG_BIN to the folder holding initdb.',
    );
  }
}

/** Runs a PostgreSQL program as the cluster's owner. */
function asOwner(command: string, args: string[]): [string, string[]] {
  return isRoot() ? ['setpriv', ['--reuid=postgres', '--regid=postgres', '--init-groups', '--', command, ...args]] : [command, args];
}

async function createDatabases(s: StackSettings): Promise<void> {
  const client = new pg.Client({ host: s.host, port: s.ports.postgres, user: 'postgres', database: 'postgres' });
  await client.connect();
  try {
    for (const db of STACK_DATABASES) {
      const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [db]);
      if (!rowCount) await client.query(`CREATE DATABASE ${db}`);
    }
  } finally {
    await client.end();
  }
}

export const postgres: Component = {
  name: 'postgres',
  portEnv: 'TRUSTSYNC_PG_PORT',
  port: (s) => s.ports.postgres,
  marker: (s) => postgresDataDir(s),
  readyTimeoutMs: 60_000,

  async start(s) {
    const bin = postgresBinDir();
    const files = componentFiles(s, 'postgres');
    const data = postgresDataDir(s);
    if (!existsSync(join(data, 'PG_VERSION'))) {
      mkdirSync(dirname(data), { recursive: true, mode: 0o755 });
      mkdirSync(data, { recursive: true, mode: 0o700 });
      if (isRoot()) chownSync(data, uid('postgres'), gid('postgres'));
      const [cmd, args] = asOwner(join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '--auth=trust', '--encoding=UTF8', '--no-locale']);
      await runCommand(cmd, args).catch((err) => {
        throw new StackError(`initdb failed for ${data}: ${(err as Error).message}`, `remove ${data} (or run \`trustsync stack down --purge\`) and try again.`);
      });
    }
    // TLS for clients that ask for it (sslmode=verify-full with the stack's CA); plain connections still work.
    const tls = await ensureStackCertificates(s);
    for (const [from, to] of [
      [tls.serverCert, 'server.crt'],
      [tls.serverKey, 'server.key'],
    ] as const) {
      copyFileSync(from, join(data, to));
      chmodSync(join(data, to), 0o600);
      if (isRoot()) chownSync(join(data, to), uid('postgres'), gid('postgres'));
    }
    const [cmd, args] = asOwner(join(bin, 'postgres'), [
      '-D',
      data,
      '-c',
      'ssl=on',
      '-p',
      String(s.ports.postgres),
      '-c',
      `listen_addresses=${s.host}`,
      '-c',
      'unix_socket_directories=',
      '-c',
      'wal_level=logical',
      // Policies that take the later of two concurrent changes need the destination's commit times too.
      '-c',
      'track_commit_timestamp=on',
      '-c',
      'max_replication_slots=64',
      '-c',
      'max_wal_senders=64',
      '-c',
      'max_connections=300',
      '-c',
      'shared_buffers=256MB',
      // A throwaway cluster: survive process crashes (WAL is still written), not power loss.
      '-c',
      'fsync=off',
      '-c',
      'full_page_writes=off',
      // Statement statistics (CREATE EXTENSION pg_stat_statements to read them): where the destination's time goes.
      '-c',
      'shared_preload_libraries=pg_stat_statements',
    ]);
    startDetached(cmd, args, files.logFile, files.pidFile);
  },

  async health(s): Promise<Health> {
    const client = new pg.Client({ host: s.host, port: s.ports.postgres, user: 'postgres', database: 'postgres', connectionTimeoutMillis: 2000 });
    try {
      await client.connect();
      const { rows } = await client.query<{ server_version: string; wal_level: string }>(
        "SELECT current_setting('server_version') AS server_version, current_setting('wal_level') AS wal_level",
      );
      const row = rows[0]!;
      const logical = row.wal_level === 'logical';
      return { healthy: logical, version: row.server_version, detail: logical ? 'wal_level=logical' : `wal_level=${row.wal_level}, needs logical` };
    } catch (err) {
      return { healthy: false, detail: (err as Error).message };
    } finally {
      await client.end().catch(() => undefined);
    }
  },

  afterReady: createDatabases,

  /** SIGINT is PostgreSQL's fast shutdown: it does not wait for clients to leave. */
  async stop(s) {
    const pid = componentPid(s, postgres);
    if (pid === undefined) return false;
    process.kill(pid, 'SIGINT');
    const deadline = Date.now() + 30_000;
    while (isAlive(pid) && Date.now() < deadline) await sleep(200);
    if (isAlive(pid)) process.kill(pid, 'SIGQUIT');
    while (isAlive(pid)) await sleep(100);
    return true;
  },

  externalDataDirs: (s) => [postgresDataDir(s)],
};

function uid(user: string): number {
  return Number(execFileSync('id', ['-u', user], { encoding: 'utf8' }).trim());
}
function gid(user: string): number {
  return Number(execFileSync('id', ['-g', user], { encoding: 'utf8' }).trim());
}
