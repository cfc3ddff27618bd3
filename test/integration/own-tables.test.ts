import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { PostgresSink } from '../../src/sink/postgres/postgres-sink.js';
import { GovernedSink } from '../../src/sink/postgres/governed-sink.js';
import { migrate, readMigrations } from '../../src/sink/postgres/migrate.js';
import { endpoints, uniqueName } from '../support/capture.js';

/**
 * trustsync's own tables (ledger, history, policy state) come from numbered migrations, each
 * applied once per database and recorded there, by whichever process starts first.
 */
describe("trustsync's own tables", () => {
  const admin = new pg.Client({ connectionString: endpoints.postgresUrl('postgres') });
  const databases: string[] = [];

  async function newDatabase(prefix: string): Promise<pg.Pool> {
    const database = uniqueName(prefix);
    await admin.query(`CREATE DATABASE ${database}`);
    databases.push(database);
    return new pg.Pool({ connectionString: endpoints.postgresUrl(database), max: 2 });
  }

  const columns = async (db: pg.Pool) =>
    (await db.query(`SELECT table_name || '.' || column_name AS c FROM information_schema.columns WHERE table_schema = 'trustsync' ORDER BY 1`)).rows.map(
      (r) => r.c as string,
    );

  beforeAll(() => admin.connect());
  afterAll(async () => {
    for (const d of databases) await admin.query(`DROP DATABASE IF EXISTS ${d}`);
    await admin.end();
  });

  it('are created by the migrations in order, each recorded once; a second start applies none', async () => {
    const db = await newDatabase('migrate_new');
    try {
      const all = readMigrations().map((m) => m.id);
      expect(all.slice(0, 3)).toEqual([1, 2, 3]);
      expect(await migrate(db)).toEqual(all);
      expect(await migrate(db)).toEqual([]);
      const { rows } = await db.query('SELECT id, name FROM trustsync.migrations ORDER BY id');
      expect(rows.map((r) => r.id)).toEqual(all);
      expect(rows[0].name).toBe('ledger-and-history');
      expect(await columns(db)).toContain('key_positions.column_positions');
    } finally {
      await db.end();
    }
  });

  it('brings a database of the shape before numbered migrations to the same shape, keeping its rows', async () => {
    const fresh = await newDatabase('migrate_ref');
    const old = await newDatabase('migrate_old');
    try {
      await migrate(fresh);
      // The ledger and history as trustsync made them before: no migrations table, no column_positions.
      await old.query(`CREATE SCHEMA trustsync;
        CREATE TABLE trustsync.key_positions (target text NOT NULL, key text NOT NULL, position numeric(40,0) NOT NULL, deleted boolean NOT NULL,
          changed_at timestamptz NOT NULL DEFAULT now(), deleted_at timestamptz, PRIMARY KEY (target, key)) WITH (fillfactor = 90);
        CREATE TABLE trustsync.truncations (target text PRIMARY KEY, position numeric(40,0) NOT NULL, truncated_at timestamptz NOT NULL DEFAULT now());
        INSERT INTO trustsync.key_positions (target, key, position, deleted) VALUES ('s.t', '1', 42, false)`);
      expect(await migrate(old)).toEqual(readMigrations().map((m) => m.id));
      expect(await columns(old)).toEqual(await columns(fresh));
      expect((await old.query(`SELECT key, position::text, column_positions FROM trustsync.key_positions`)).rows).toEqual([
        { key: '1', position: '42', column_positions: null },
      ]);
    } finally {
      await fresh.end();
      await old.end();
    }
  });

  it('refuses a database a newer trustsync migrated, saying which', async () => {
    const db = await newDatabase('migrate_newer');
    try {
      await migrate(db);
      await db.query(`INSERT INTO trustsync.migrations (id, name) VALUES (9999, 'from-the-future')`);
      await expect(migrate(db)).rejects.toThrow(/migrated by a newer trustsync \(migration 9999/);
    } finally {
      await db.end();
    }
  });

  it('are brought up to date by processes that start together, none of them failing', async () => {
    const database = await newDatabase('own_tables');
    await database.end();
    const url = endpoints.postgresUrl(databases.at(-1)!);
    const pools = Array.from({ length: 6 }, () => new pg.Pool({ connectionString: url, max: 1 }));
    try {
      await Promise.all(pools.map((p) => p.query('SELECT 1')));
      // As two-way flows starting at once do in one database: one direction's sink, the other's echo ledger, the policy state.
      const prepares = [
        (pool: pg.Pool) => new PostgresSink(pool).prepare(),
        (pool: pg.Pool) => migrate(pool),
        (pool: pg.Pool) => new GovernedSink(new PostgresSink(pool)).prepare(),
      ];
      const failed: string[] = [];
      for (let round = 0; round < 20; round++) {
        const started = await Promise.allSettled(pools.map((pool, i) => prepares[i % prepares.length]!(pool)));
        for (const s of started) if (s.status === 'rejected') failed.push(String(s.reason));
      }
      expect(failed).toEqual([]);
      expect((await pools[0]!.query('SELECT count(*)::int AS n FROM trustsync.migrations')).rows[0].n).toBe(readMigrations().length);
    } finally {
      await Promise.all(pools.map((p) => p.end()));
    }
  });
});
