import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { StackSettings } from './settings.js';
import { componentFiles, type Component, type Health } from './component.js';
import { runCommand, startDetached } from './processes.js';
import { StackError } from '../model/errors.js';

/** Databases the stack's MariaDB holds: a source and a destination, as in PostgreSQL. */
export const MARIADB_DATABASES = ['trustsync_source', 'trustsync_dest'] as const;

const run = promisify(execFile);

export function mariadbDataDir(s: StackSettings): string {
  return join(s.stateDir, 'mariadb', 'data');
}

/** The server's programs: Debian's mariadb-server package, or TRUSTSYNC_MARIADB_BIN (a folder holding mariadbd and mariadb-install-db). */
function program(name: 'mariadbd' | 'mariadb-install-db' | 'mariadb', env: NodeJS.ProcessEnv = process.env): string {
  const dirs = env.TRUSTSYNC_MARIADB_BIN ? [env.TRUSTSYNC_MARIADB_BIN] : ['/usr/sbin', '/usr/bin', '/usr/local/bin', '/usr/local/mysql/bin'];
  const found = dirs.map((d) => join(d, name)).find((p) => existsSync(p));
  if (!found) {
    throw new StackError(
      `the MariaDB program ${name} was not found.`,
      'install it (e.g. `apt-get install mariadb-server mariadb-client`) or set TRUSTSYNC_MARIADB_BIN to the folder holding mariadbd and mariadb-install-db.',
    );
  }
  return found;
}

/**
 * One statement through the `mariadb` client, as root over TCP; its rows as tab-separated text.
 * `--no-defaults`: the machine's own my.cnf names its own user, socket and log files.
 */
async function query(s: StackSettings, sql: string): Promise<string[][]> {
  const { stdout } = await run(
    program('mariadb'),
    ['--no-defaults', '--protocol=TCP', '-h', s.host, '-P', String(s.ports.mariadb), '-u', 'root', '--batch', '--skip-column-names', '-e', sql],
    { timeout: 5000 },
  );
  return stdout
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => l.split('\t'));
}

/**
 * A throwaway MariaDB with the binary log as Debezium's capture needs it (ROW format, FULL row images,
 * a server id, GTIDs kept strictly in order), in the stack's state folder, on its own port. The
 * system's own MariaDB service is never touched.
 */
export const mariadb: Component = {
  name: 'mariadb',
  portEnv: 'TRUSTSYNC_MARIADB_PORT',
  port: (s) => s.ports.mariadb,
  marker: (s) => mariadbDataDir(s),
  readyTimeoutMs: 60_000,

  async start(s) {
    const files = componentFiles(s, 'mariadb');
    const data = mariadbDataDir(s);
    const user = process.getuid?.() === 0 ? ['--user=root'] : [];
    if (!existsSync(join(data, 'mysql'))) {
      mkdirSync(data, { recursive: true, mode: 0o700 });
      await runCommand(program('mariadb-install-db'), [
        '--no-defaults',
        `--datadir=${data}`,
        '--auth-root-authentication-method=normal',
        '--skip-test-db',
        ...user,
      ]).catch((err) => {
        throw new StackError(
          `mariadb-install-db failed for ${data}: ${(err as Error).message}`,
          `remove ${data} (or run \`trustsync stack down --purge\`) and try again.`,
        );
      });
    }
    startDetached(
      program('mariadbd'),
      [
        '--no-defaults',
        `--datadir=${data}`,
        `--port=${s.ports.mariadb}`,
        `--bind-address=${s.host}`,
        `--socket=${join(files.dir, 'mariadb.sock')}`,
        `--pid-file=${join(files.dir, 'mariadbd.pid')}`,
        '--skip-name-resolve',
        '--log-bin=mysql-bin',
        '--binlog-format=ROW',
        '--binlog-row-image=FULL',
        '--server-id=1',
        '--gtid-strict-mode=ON',
        '--innodb-buffer-pool-size=128M',
        // A throwaway server: survive process crashes, not power loss.
        '--innodb-flush-log-at-trx-commit=2',
        '--sync-binlog=0',
        ...user,
      ],
      files.logFile,
      files.pidFile,
    );
  },

  async health(s): Promise<Health> {
    try {
      const [row] = await query(s, 'SELECT @@version, @@log_bin, @@binlog_format, @@binlog_row_image');
      const [version, logBin, format, image] = row ?? [];
      const capturable = logBin === '1' && format === 'ROW' && image === 'FULL';
      return {
        healthy: capturable,
        version,
        detail: capturable ? 'binlog ROW, FULL row images' : `log_bin=${logBin} binlog_format=${format} binlog_row_image=${image}: Debezium needs 1, ROW, FULL`,
      };
    } catch (err) {
      return { healthy: false, detail: (err as Error).message.split('\n').find((l) => l.startsWith('ERROR')) ?? (err as Error).message };
    }
  },

  async afterReady(s) {
    await query(s, MARIADB_DATABASES.map((d) => `CREATE DATABASE IF NOT EXISTS ${d}`).join('; '));
  },
  // No stop of its own: SIGTERM, the default, is mariadbd's normal shutdown.
};
