import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mariadb, { type Pool } from 'mariadb';
import pg from 'pg';
import { Kafka, logLevel } from 'kafkajs';
import { stringify } from 'yaml';
import { PACKAGE_DIR, stackEndpoints, type StackSettings } from '../src/stack/settings.js';
import { componentPid } from '../src/stack/component.js';
import { connect as connectComponent } from '../src/stack/connect.js';
import { kafka as kafkaComponent } from '../src/stack/kafka.js';
import { mariadb as mariadbComponent } from '../src/stack/mariadb.js';
import { ConnectClient } from '../src/stack/connectors.js';
import { removePostgresSource } from '../src/stack/postgres-source.js';
import {
  benchCapture,
  captureWorkload,
  cpuMeter,
  histogramBuckets,
  jdbcSinkSettings,
  percentiles,
  processCpuSeconds,
  removeLeftovers,
  sleep,
  SOURCE,
  timeUntilQuiet,
  waitExit,
  type ContestResult,
} from './contest.js';

/**
 * The MariaDB round: trustsync against the Debezium JDBC sink connector (its MySQL dialect, with the
 * MariaDB driver its plugin ships), both reading the same captured topic from its beginning into a
 * fresh table of their own in the stack's MariaDB, `rounds` times, the order alternating. The clock
 * runs from a contender's start to its last write; its table is then compared with the source value
 * for value (canonical text: instants in UTC with microseconds).
 */
export interface MariadbContestOptions {
  events: number;
  keys: number;
  rounds: number;
  log: (line: string) => void;
}

export interface MariadbRun {
  contender: string;
  round: number;
  seconds: number;
  eventsPerSecond: number;
  p50Ms: number | null;
  p99Ms: number | null;
  peakRssMb: number | null;
  cpuSeconds: { contender: number; mariadb: number; broker: number };
  wrongRows: number;
  missingRows: number;
}

export interface MariadbContestResult {
  workload: ContestResult['workload'];
  jdbcSinkSettings: Record<string, string>;
  runs: MariadbRun[];
  /** Per contender: the median events/s over the rounds, and trustsync's over the JDBC sink's. */
  summary: { contender: string; medianEventsPerSecond: number; wrongRows: number; missingRows: number }[];
  trustsyncOverJdbc: number;
}

const DDL = (table: string) =>
  `CREATE TABLE bench_dst.${table} (id BIGINT PRIMARY KEY, name VARCHAR(255) NOT NULL, qty INT NOT NULL, price_cents BIGINT NOT NULL, notes LONGTEXT, updated_at DATETIME(6) NOT NULL)`;

/**
 * Before each contender, the dirty pages the step before it left are written out (InnoDB would
 * otherwise flush them during the next contender's time), as the PostgreSQL round checkpoints.
 */
async function settle(db: Pool, log: (line: string) => void): Promise<void> {
  const started = Date.now();
  const [{ Value: before }] = await db.query("SHOW GLOBAL VARIABLES LIKE 'innodb_max_dirty_pages_pct'");
  await db.query('SET GLOBAL innodb_max_dirty_pages_pct = 0');
  try {
    for (let i = 0; i < 300; i++) {
      const [{ Value: dirty }] = await db.query("SHOW GLOBAL STATUS LIKE 'Innodb_buffer_pool_pages_dirty'");
      if (Number(dirty) < 50) break;
      await sleep(100);
    }
  } finally {
    await db.query(`SET GLOBAL innodb_max_dirty_pages_pct = ${Number(before)}`);
  }
  log(`  (InnoDB flush: ${((Date.now() - started) / 1000).toFixed(1)} s, not counted)`);
}

/** Moves with every write: updates change qty and updated_at, inserts and deletes the count. */
async function tableState(db: Pool, table: string): Promise<string> {
  const [r] = await db.query(`SELECT COUNT(*) AS n, COALESCE(SUM(qty), 0) AS q, MAX(updated_at) AS t FROM bench_dst.${table}`);
  return `${r.n}/${r.q}/${r.t}`;
}

/** Rows that differ from the source (or should not be there), and rows missing, in canonical text. */
async function checkRows(source: pg.Client, db: Pool, table: string): Promise<{ wrongRows: number; missingRows: number }> {
  const { rows } = await source.query<{ id: string; r: string }>(
    `SELECT id::text AS id, concat_ws('|', name, qty, price_cents, coalesce(notes, '~'), to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')) AS r FROM ${SOURCE}`,
  );
  const want = new Map(rows.map((x) => [x.id, x.r]));
  const got: { id: string; r: string }[] = await db.query(
    `SELECT CAST(id AS CHAR) AS id, CONCAT_WS('|', name, qty, price_cents, COALESCE(notes, '~'), DATE_FORMAT(updated_at, '%Y-%m-%d %H:%i:%s.%f')) AS r FROM bench_dst.${table}`,
  );
  let wrongRows = 0;
  for (const g of got) if (want.get(g.id) !== g.r) wrongRows++;
  const seen = new Set(got.map((g) => g.id));
  return { wrongRows, missingRows: [...want.keys()].filter((id) => !seen.has(id)).length };
}

export async function runMariadbContest(s: StackSettings, o: MariadbContestOptions): Promise<MariadbContestResult> {
  const e = stackEndpoints(s);
  const kafka = new Kafka({ clientId: 'trustsync-bench', brokers: e.kafkaBrokers, logLevel: logLevel.NOTHING });
  const source = new pg.Client(e.postgresUrl('trustsync_source'));
  source.on('error', (err) => o.log(`connection lost: ${err.message}`));
  await source.connect();
  const db = mariadb.createPool({
    host: s.host,
    port: s.ports.mariadb,
    user: 'root',
    connectionLimit: 2,
    dateStrings: true,
    initSql: "SET time_zone = '+00:00'",
  });
  const connect = new ConnectClient(e.connectUrl);
  const run = Date.now().toString(36);
  const { capture, topic } = benchCapture(s, run);
  const jdbcSettings = (table: string) => jdbcSinkSettings(topic, `jdbc:mariadb://${s.host}:${s.ports.mariadb}/bench_dst`, 'root', table);
  const runs: MariadbRun[] = [];
  let current: string | undefined;
  try {
    await removeLeftovers(connect, o.log);
    await db.query('DROP DATABASE IF EXISTS bench_dst');
    await db.query('CREATE DATABASE bench_dst');
    await db
      .query('CREATE DATABASE IF NOT EXISTS trustsync')
      .then(() =>
        Promise.all(['key_positions', 'history'].map((t) => db.query(`DELETE FROM trustsync.${t} WHERE target LIKE 'bench\\_dst.%'`).catch(() => undefined))),
      );
    const workload = await captureWorkload(source, kafka, connect, capture, topic, o);
    const kafkaPid = componentPid(s, kafkaComponent);
    const mariadbPid = componentPid(s, mariadbComponent);
    const dir = mkdtempSync(join(tmpdir(), 'trustsync-bench-mariadb-'));
    const metricsPort = 9479;

    const measure = async (
      contender: string,
      round: number,
      table: string,
      pid: () => number | undefined,
      latency: () => Promise<{ p50Ms: number | null; p99Ms: number | null }>,
    ) => {
      const cpuSpent = cpuMeter({
        contender: () => processCpuSeconds(pid()),
        mariadb: () => processCpuSeconds(mariadbPid),
        broker: () => processCpuSeconds(kafkaPid),
      });
      const { seconds, peakRssMb: peak } = await timeUntilQuiet(() => tableState(db, table), pid);
      const cpuSeconds = cpuSpent();
      const rows = await checkRows(source, db, table);
      runs.push({ contender, round, seconds, eventsPerSecond: workload.events / seconds, ...(await latency()), peakRssMb: peak, cpuSeconds, ...rows });
      o.log(
        `  round ${round} ${contender}: ${seconds.toFixed(1)} s (${(workload.events / seconds).toFixed(0)} events/s), ${rows.wrongRows} wrong rows, ${rows.missingRows} missing`,
      );
    };

    const trustsyncRound = async (round: number) => {
      const table = `items_trustsync_${round}`;
      await db.query(DDL(table));
      const flowFile = join(dir, `flow-${round}.yaml`);
      writeFileSync(
        flowFile,
        stringify({
          flow: `bench-mariadb-${run}-${round}`,
          source: { brokers: e.kafkaBrokers, decoding: 'json' },
          destination: { url: e.mariadbUrl('bench_dst'), tables: [{ topic, table: `bench_dst.${table}`, createIfMissing: false }] },
          batch: { maxRows: 5000, maxWaitMs: 50 },
          metrics: { port: metricsPort },
          log: { level: 'warn' },
        }),
      );
      const child = spawn(process.execPath, [join(PACKAGE_DIR, 'bin', 'trustsync.js'), 'run', '--config', flowFile], {
        stdio: ['ignore', 'ignore', 'inherit'],
      });
      try {
        await measure(
          'trustsync',
          round,
          table,
          () => child.pid,
          async () => percentiles(histogramBuckets(await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text(), 'trustsync_apply_seconds')),
        );
      } finally {
        child.kill('SIGTERM');
        await waitExit(child);
      }
    };
    const jdbcRound = async (round: number) => {
      const table = `items_jdbc_${round}`;
      await db.query(DDL(table));
      current = `bench-mariadb-jdbc-sink-${run}-${round}`;
      await connect.apply({ name: current, config: jdbcSettings(table) });
      await measure(
        'Debezium JDBC sink',
        round,
        table,
        () => componentPid(s, connectComponent),
        async () => ({ p50Ms: null, p99Ms: null }),
      );
      await connect.remove(current).catch(() => undefined);
      current = undefined;
    };
    for (let round = 1; round <= o.rounds; round++) {
      o.log(`round ${round} of ${o.rounds} …`);
      // The order alternates: whoever goes second meets a warmer broker and server.
      const order = round % 2 === 1 ? [trustsyncRound, jdbcRound] : [jdbcRound, trustsyncRound];
      for (const contender of order) {
        await settle(db, o.log);
        await contender(round);
      }
    }
    const median = (xs: number[]) => {
      const sorted = [...xs].sort((a, b) => a - b);
      const mid = Math.floor(sorted.length / 2);
      return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
    };
    const summary = ['trustsync', 'Debezium JDBC sink'].map((contender) => {
      const mine = runs.filter((r) => r.contender === contender);
      return {
        contender,
        medianEventsPerSecond: median(mine.map((r) => r.eventsPerSecond)),
        wrongRows: Math.max(...mine.map((r) => r.wrongRows)),
        missingRows: Math.max(...mine.map((r) => r.missingRows)),
      };
    });
    return {
      workload,
      jdbcSinkSettings: jdbcSettings('items_jdbc_<round>'),
      runs,
      summary,
      trustsyncOverJdbc: summary[0]!.medianEventsPerSecond / summary[1]!.medianEventsPerSecond,
    };
  } finally {
    if (current) await connect.remove(current).catch(() => undefined);
    await removePostgresSource(connect, capture).catch(() => undefined);
    await source.end();
    await db.end();
  }
}
