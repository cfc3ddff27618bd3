import type pg from 'pg';
import { refuseNewerDatabase, migrationsDir, readMigrations as readDir, type Migration } from '../migrations.js';
import { inTransaction } from './postgres-sink.js';

/** PostgreSQL's migrations, in order. */
export function readMigrations(): Migration[] {
  return readDir(migrationsDir('postgres'));
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
    refuseNewerDatabase(done, migrations);
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
