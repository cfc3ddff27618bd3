import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';
import { TrustsyncError } from '../../model/errors.js';
import { inTransaction } from './postgres-sink.js';

export interface Migration {
  id: number;
  name: string;
  sql: string;
}

/** The .sql files beside this module's source: dist/ holds only the compiled JavaScript. */
function migrationsDir(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  return here.includes(join('dist', 'src')) ? resolve(here, '../../../../src/sink/postgres/migrations') : join(here, 'migrations');
}

/** `NNNN-name.sql`, in order: each is applied once per database, and never changed once released. */
export function readMigrations(dir = migrationsDir()): Migration[] {
  return readdirSync(dir)
    .filter((f) => /^\d{4}-[\w-]+\.sql$/.test(f))
    .sort()
    .map((f) => ({ id: Number(f.slice(0, 4)), name: f.slice(5, -4), sql: readFileSync(join(dir, f), 'utf8') }));
}

let known: Migration[] | undefined;

/**
 * Brings trustsync's own tables in a database up to date: the migrations it has not had, in order,
 * each recorded in trustsync.migrations, all in one transaction, one process at a time (processes
 * starting together would otherwise race in the catalog). Returns the ids applied.
 */
export async function migrate(db: pg.Pool, migrations: readonly Migration[] = (known ??= readMigrations())): Promise<number[]> {
  return inTransaction(db, "bringing trustsync's own tables up to date", async (client) => {
    await client.query(`SELECT pg_advisory_xact_lock(hashtext('trustsync:migrations'))`);
    await client.query(`CREATE SCHEMA IF NOT EXISTS trustsync;
      CREATE TABLE IF NOT EXISTS trustsync.migrations (id integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
    const done = new Set((await client.query<{ id: number }>('SELECT id FROM trustsync.migrations')).rows.map((r) => r.id));
    const newest = Math.max(0, ...migrations.map((m) => m.id));
    const ahead = [...done].filter((id) => id > newest);
    if (ahead.length) {
      throw new TrustsyncError(
        'database-newer',
        `the database's trustsync tables were migrated by a newer trustsync (migration ${Math.max(...ahead)}; this one knows up to ${newest})`,
        false,
        {
          fix: 'run the trustsync version that migrated it, or a newer one',
        },
      );
    }
    const applied: number[] = [];
    for (const m of migrations) {
      if (done.has(m.id)) continue;
      await client.query(m.sql);
      await client.query('INSERT INTO trustsync.migrations (id, name) VALUES ($1, $2)', [m.id, m.name]);
      applied.push(m.id);
    }
    return applied;
  });
}
