import { describe, expect, it } from 'vitest';
import pg from 'pg';
import { PostgresSink, createOwnTables } from '../../src/sink/postgres-sink.js';
import { GovernedSink } from '../../src/sink/governed-sink.js';
import { GOVERNED_DDL } from '../../src/sink/governed-sql.js';
import { HISTORY_DDL } from '../../src/history/history.js';
import { endpoints, uniqueName } from '../support/capture.js';

/** trustsync's own tables (ledger, history, policy state) are created or brought up to date by every process that starts. */
describe("trustsync's own tables", () => {
  it('are created, then brought up to date, by processes that start together, none of them failing', async () => {
    const database = uniqueName('own_tables');
    const admin = new pg.Client({ connectionString: endpoints.postgresUrl('postgres') });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${database}`);
    const pools = Array.from({ length: 6 }, () => new pg.Pool({ connectionString: endpoints.postgresUrl(database), max: 1 }));
    try {
      await Promise.all(pools.map((p) => p.query('SELECT 1')));
      // As two-way flows starting at once do in one database: the ledger and history of one
      // direction, the echo ledger and history of the other, the policy state of both.
      const prepares = [
        (pool: pg.Pool) => new PostgresSink(pool).prepare(),
        (pool: pg.Pool) => createOwnTables(pool, GOVERNED_DDL + HISTORY_DDL),
        (pool: pg.Pool) => new GovernedSink(new PostgresSink(pool)).prepare(),
      ];
      // The first round finds a new database, the others the tables made.
      const failed: string[] = [];
      for (let round = 0; round < 50; round++) {
        const started = await Promise.allSettled(pools.map((pool, i) => prepares[i % prepares.length]!(pool)));
        for (const s of started) if (s.status === 'rejected') failed.push(String(s.reason));
      }
      expect(failed).toEqual([]);
    } finally {
      await Promise.all(pools.map((p) => p.end()));
      await admin.query(`DROP DATABASE ${database}`);
      await admin.end();
    }
  });
});
