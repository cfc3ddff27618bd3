import type { Pool } from 'mariadb';
import { migrationsDir, readMigrations as readDir, refuseNewerDatabase, type Migration } from '../migrations.js';
import { classifyMariadbError } from './mariadb-errors.js';

/** MariaDB's migrations, in order. */
export function readMigrations(): Migration[] {
  return readDir(migrationsDir('mariadb'));
}

let known: Migration[] | undefined;

/** A migration's statements: MariaDB takes one at a time (its DDL commits by itself anyway). */
export function statementsOf(sql: string): string[] {
  return sql
    .split(/;\s*$/m)
    .map((s) => s.replace(/^\s*--.*$/gm, '').trim())
    .filter(Boolean);
}

/**
 * Brings trustsync's own tables (database trustsync) up to date: the migrations it has not had, in
 * order, each recorded in trustsync.migrations, one process at a time (a named lock). MariaDB's DDL
 * is not transactional, so each migration is written to be re-run safely (IF NOT EXISTS) should a
 * process die between its statements and its record. Returns the ids applied.
 */
export async function migrate(pool: Pool, migrations: readonly Migration[] = (known ??= readMigrations())): Promise<number[]> {
  const conn = await pool.getConnection().catch((err: unknown) => {
    throw classifyMariadbError(err, "bringing trustsync's own tables up to date");
  });
  try {
    await conn.query(`SELECT GET_LOCK('trustsync:migrations', 60)`);
    await conn.query('CREATE DATABASE IF NOT EXISTS trustsync CHARACTER SET utf8mb4 COLLATE utf8mb4_bin');
    await conn.query(
      'CREATE TABLE IF NOT EXISTS trustsync.migrations (id INT PRIMARY KEY, name VARCHAR(255) NOT NULL, applied_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6))',
    );
    const done = new Set(((await conn.query('SELECT id FROM trustsync.migrations')) as { id: number }[]).map((r) => r.id));
    refuseNewerDatabase(done, migrations);
    const applied: number[] = [];
    for (const m of migrations) {
      if (done.has(m.id)) continue;
      for (const statement of statementsOf(m.sql)) await conn.query(statement);
      await conn.query('INSERT INTO trustsync.migrations (id, name) VALUES (?, ?)', [m.id, m.name]);
      applied.push(m.id);
    }
    return applied;
  } catch (err) {
    throw classifyMariadbError(err, "bringing trustsync's own tables up to date");
  } finally {
    await conn.query(`SELECT RELEASE_LOCK('trustsync:migrations')`).catch(() => undefined);
    await conn.release();
  }
}
