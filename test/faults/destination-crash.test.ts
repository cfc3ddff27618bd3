import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import type { FlowRunner } from '../../src/flow/run-flow.js';
import { componentPid } from '../../src/stack/component.js';
import { postgres } from '../../src/stack/postgres.js';
import { isAlive } from '../../src/stack/processes.js';
import { benchDestinationSettings } from '../../src/stack/settings.js';
import { postgresClusterDown, postgresClusterUp } from '../../src/stack/stack.js';
import { kafkaClient, settings, uniqueName } from '../support/capture.js';
import { debeziumJson } from '../support/events.js';
import { flowConfig, startFlow } from '../support/flow.js';
import { waitFor } from '../support/wait.js';

const ROWS = 200;
/** The row whose insert the destination holds: the batch is provably open while it sleeps. */
const HELD = 150;

/**
 * The destination alone crashes (its own cluster, the source and Kafka untouched) while a batch is
 * provably open in it: a trigger holds the batch mid-write, and the cluster is shut down immediately
 * then. The destination never shows part of the batch, the retry is on record, and the destination's
 * own log of writes (a trigger, apart from trustsync) holds each row written once.
 */
describe('the destination crashes with a batch open', () => {
  const name = uniqueName('f_destcrash');
  const topic = `${name}.things`;
  const table = `${name}.things`;
  const cluster = benchDestinationSettings(settings);
  const url = (database: string) => `postgres://postgres@${cluster.host}:${cluster.ports.postgres}/${database}`;
  let runner: FlowRunner | undefined;
  let dest: pg.Client | undefined;

  const connect = async () => {
    const c = new pg.Client({ connectionString: url('trustsync_dest') });
    c.on('error', () => undefined);
    await c.connect();
    return c;
  };

  beforeAll(async () => {
    await postgresClusterUp(cluster, 'TRUSTSYNC_BENCH_PG_PORT', () => undefined);
    dest = await connect();
    const started = (await dest.query<{ t: string }>('SELECT pg_postmaster_start_time()::text AS t')).rows[0]!.t;
    await dest.query(`CREATE SCHEMA ${name};
      CREATE TABLE ${name}.things (id int PRIMARY KEY, v text);
      CREATE TABLE ${name}.writes (seq bigserial PRIMARY KEY, op text, id int, v text);
      CREATE FUNCTION ${name}.hold() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
        -- Only in this incarnation of the cluster: after the crash, the retry goes through.
        IF NEW.id = ${HELD} AND pg_postmaster_start_time() = '${started}'::timestamptz THEN PERFORM pg_sleep(300); END IF;
        RETURN NEW; END $$;
      CREATE TRIGGER hold BEFORE INSERT ON ${name}.things FOR EACH ROW EXECUTE FUNCTION ${name}.hold();
      CREATE FUNCTION ${name}.log() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
        INSERT INTO ${name}.writes (op, id, v) VALUES (TG_OP, NEW.id, NEW.v); RETURN NEW; END $$;
      CREATE TRIGGER log AFTER INSERT OR UPDATE ON ${name}.things FOR EACH ROW EXECUTE FUNCTION ${name}.log();`);

    const kafka = kafkaClient();
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true });
    await admin.disconnect();
    const producer = kafka.producer();
    await producer.connect();
    // All in Kafka before the flow starts: one batch holds them all.
    await producer.send({ topic, messages: Array.from({ length: ROWS }, (_, i) => debeziumJson(name, 'things', 'c', i + 1, `v${i + 1}`, 100 + 16 * i)) });
    await producer.disconnect();
  });

  afterAll(async () => {
    await runner?.stop().catch(() => undefined);
    await dest?.end().catch(() => undefined);
    await postgresClusterDown(cluster);
  });

  it('never shows part of the batch, retries it on record, and writes each row once', async () => {
    runner = await startFlow(
      flowConfig({
        name,
        destinationUrl: url('trustsync_dest'),
        topics: [{ topic, table }],
        extra: { batch: { maxRows: 1000, maxWaitMs: 2000 } },
      }),
    );
    // Provably open: the batch's backend sleeps inside the held insert, the rows before it written but not committed.
    await waitFor(
      async () => (await dest!.query(`SELECT 1 FROM pg_stat_activity WHERE wait_event = 'PgSleep' AND state = 'active'`)).rowCount === 1,
      'the batch held open in the destination',
    );
    expect((await dest!.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`)).rows[0]!.n).toBe(0);

    // PostgreSQL's immediate shutdown: every backend dies mid-transaction; recovery runs from the WAL.
    const pid = componentPid(cluster, postgres)!;
    process.kill(pid, 'SIGQUIT');
    await waitFor(async () => !isAlive(pid), 'the destination cluster to go down', 30_000);
    await dest!.end().catch(() => undefined);
    await postgresClusterUp(cluster, 'TRUSTSYNC_BENCH_PG_PORT', () => undefined);
    dest = await connect();

    // From its first moment back, the destination holds none of the batch or all of it.
    const seen: number[] = [];
    await waitFor(async () => {
      const n = (await dest!.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`)).rows[0]!.n;
      seen.push(n);
      return n === ROWS;
    }, 'the retried batch to commit');
    expect(seen.every((n) => n === 0 || n === ROWS)).toBe(true);
    await sleep(500);

    // The destination's own account: each row inserted once, none updated.
    const writes = await dest!.query<{ op: string; n: number }>(
      `SELECT op, count(*)::int AS n, count(DISTINCT id)::int AS ids FROM ${name}.writes GROUP BY op`,
    );
    expect(writes.rows).toEqual([{ op: 'INSERT', n: ROWS, ids: ROWS }]);
    // trustsync's account: the retry on record, each change applied once.
    const told = await dest!.query<{ decision: string; n: number }>(
      'SELECT decision, count(*)::int AS n FROM trustsync.history WHERE flow = $1 GROUP BY decision ORDER BY decision',
      [name],
    );
    const counts = Object.fromEntries(told.rows.map((r) => [r.decision, r.n]));
    expect(counts.applied).toBe(ROWS);
    expect(counts.retried).toBeGreaterThanOrEqual(1);
    expect(Object.keys(counts).sort()).toEqual(['applied', 'retried']);
  });
});
