import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { Kafka, logLevel } from 'kafkajs';
import { stringify } from 'yaml';
import { PACKAGE_DIR, stackEndpoints, type StackSettings } from '../src/stack/settings.js';
import { seededRandom } from '../src/demo/workload.js';
import { componentPid } from '../src/stack/component.js';
import { connect as connectComponent } from '../src/stack/connect.js';
import { kafka as kafkaComponent } from '../src/stack/kafka.js';
import { postgres as postgresComponent } from '../src/stack/postgres.js';
import { ConnectClient, readConnectorFile, stackConnectorVars, type ConnectorConfig } from '../src/stack/connectors.js';
import { removePostgresSource } from '../src/stack/postgres-source.js';
import { topicOffsets } from '../src/kafka/topics.js';

/**
 * trustsync against the Debezium JDBC sink connector and a ceiling consumer (the least work that
 * lands the changes), on one topic captured once by real Debezium, in rounds with the order rotated.
 * Each contender starts from the topic's beginning into a fresh table of its own, in the
 * destination's PostgreSQL cluster (not the source's, as in production: the capture's walsender
 * decodes every write of the cluster it reads, and would tax each contender by the WAL it writes);
 * its clock runs from its start until its offsets are committed at the topic's end (as the broker
 * says) and its last write, and its table is then compared with the source row by row. Then: a
 * re-delivery round (old windows appended to the topic), and a round on the remedy Debezium
 * documents for unchanged TOAST values (REPLICA IDENTITY FULL), so every contender is also measured
 * at its most correct.
 */
export interface ContestOptions {
  /** The destination's PostgreSQL cluster: not the source's (bench/run.ts starts it). */
  destination: StackSettings;
  events: number;
  keys: number;
  /** Rounds of the captured stream, each contender once per round. */
  rounds: number;
  /** Changes in the TOAST-remedy round's workload. */
  remedyEvents: number;
  /** Also the naive consumer (one upsert per message: minutes a million), once. */
  naive: boolean;
  log: (line: string) => void;
}

export type Phase = 'stream' | 'redelivery' | 'toast-remedy';

export interface ContenderRun {
  contender: string;
  phase: Phase;
  round: number;
  events: number;
  seconds: number;
  eventsPerSecond: number;
  p50Ms: number | null;
  p99Ms: number | null;
  peakRssMb: number | null;
  /** CPU kept busy from the contender's start until it was done: on one machine, what it costs. */
  cpuSeconds: ContenderCpu;
  /** All of that CPU, per change, in µs. */
  cpuMicrosPerChange: number;
  wrongRows: number;
  missingRows: number;
  note: string;
}

/** CPU seconds, split by who spent them: the contender's own process, the destination's cluster, the broker serving its reads. */
export interface ContenderCpu {
  contender: number;
  destinationPostgres: number;
  broker: number;
}

export interface ContestResult {
  workload: Workload;
  remedyWorkload: Workload;
  redeliveredRecords: number;
  jdbcSinkSettings: Record<string, string>;
  /** The Connect worker's heap and collector, from its command line. */
  connectJvm: string;
  /** trustsync live at half its rate: latency and memory in steady state. */
  steady: SteadyResult;
  runs: ContenderRun[];
  summary: {
    phase: Phase;
    contender: string;
    rounds: number;
    medianEventsPerSecond: number;
    minEventsPerSecond: number;
    maxEventsPerSecond: number;
    medianCpuMicrosPerChange: number;
    wrongRows: number;
    missingRows: number;
  }[];
  trustsyncOverJdbc: number;
  trustsyncOverCeiling: number;
}

export interface Workload {
  events: number;
  keys: number;
  records: number;
  inserts: number;
  updates: number;
  deletes: number;
  toastedRows: number;
  captureSeconds: number;
  replicaIdentity: 'DEFAULT' | 'FULL';
}

export const SOURCE = 'bench_src.items';
export const COLUMNS = ['id', 'name', 'qty', 'price_cents', 'notes', 'updated_at'];
export const TABLE_DDL = (name: string) =>
  `CREATE TABLE ${name} (id bigint PRIMARY KEY, name text NOT NULL, qty integer NOT NULL, price_cents bigint NOT NULL, notes text, updated_at timestamptz NOT NULL)`;
const BATCH = 10_000;
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The keys an update statement touches: the hot 1 % every time, the rest spread at random. */
function updateBatch(keys: number, hot: number, size: number, random: () => number): number[] {
  const ids = new Set<number>();
  for (let i = 1; i <= hot && ids.size < size; i++) ids.add(i);
  while (ids.size < size) ids.add(1 + Math.floor(random() * keys));
  return [...ids];
}

/** Writes the workload at the source while Debezium captures it; returns what was written. */
export async function writeWorkload(source: pg.Client, o: Pick<ContestOptions, 'events' | 'keys' | 'log'>): Promise<Omit<Workload, 'replicaIdentity'>> {
  const random = seededRandom(7);
  const deletes = Math.floor(o.keys / 100);
  const updates = Math.max(0, o.events - o.keys - deletes);
  for (let from = 1; from <= o.keys; from += BATCH) {
    const to = Math.min(o.keys, from + BATCH - 1);
    // One row in ten carries ~6 KB of incompressible notes: stored out of line (TOAST), so an update
    // that leaves it alone is captured without it.
    await source.query(
      `INSERT INTO ${SOURCE} SELECT g, 'item ' || g, 0, (g * 37) % 100000,
              CASE WHEN g % 10 = 0 THEN array_to_string(ARRAY(SELECT md5(random()::text || g || i) FROM generate_series(1, 200) i), '') END, now()
         FROM generate_series($1::bigint, $2::bigint) g`,
      [from, to],
    );
  }
  for (let done = 0; done < updates;) {
    // At most half the keys per statement, so drawing distinct keys at random stays cheap.
    const ids = updateBatch(o.keys, Math.floor(o.keys / 100), Math.min(BATCH, Math.ceil(o.keys / 2), updates - done), random);
    await source.query(`UPDATE ${SOURCE} SET qty = qty + 1, price_cents = price_cents + 1, updated_at = now() WHERE id = ANY($1::bigint[])`, [ids]);
    done += ids.length;
    if (done % 100_000 < BATCH) o.log(`  ${(o.keys + done).toLocaleString('en')} changes written …`);
  }
  const gone = Array.from({ length: deletes }, (_, i) => o.keys - i * 97).filter((id) => id > 0);
  await source.query(`DELETE FROM ${SOURCE} WHERE id = ANY($1::bigint[])`, [gone]);
  return {
    events: o.keys + updates + gone.length,
    keys: o.keys,
    records: o.keys + updates + 2 * gone.length,
    inserts: o.keys,
    updates,
    deletes: gone.length,
    toastedRows: Math.floor(o.keys / 10),
    captureSeconds: 0,
  };
}

export async function topicRecords(kafka: Kafka, topic: string): Promise<number> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    return (await topicOffsets(admin, topic).catch(() => [])).reduce((n, p) => n + Number(p.high) - Number(p.low), 0);
  } finally {
    await admin.disconnect();
  }
}

/**
 * A fingerprint of a destination table that moves with every write: its row count and its newest
 * transaction id. (PostgreSQL's own write counters reach pg_stat only seconds after an idle backend's
 * last write: too late to time a run by.)
 */
async function tableState(dest: pg.Client, table: string): Promise<string> {
  const { rows } = await dest.query<{ n: string; x: string | null }>(`SELECT count(*) AS n, max(xmin::text::bigint) AS x FROM ${table}`);
  return `${rows[0]!.n}/${rows[0]!.x ?? '-'}`;
}

/** Resident memory of a process now, in MB (null once it is gone). */
export function rssMb(pid: number | undefined): number | null {
  if (pid === undefined) return null;
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : null;
  } catch {
    return null;
  }
}

/**
 * Runs until the destination has been quiet for `quietMs` (after its first write, unless it may
 * already be done), sampling the process's memory; returns the time from start to the last write seen.
 */
export async function timeUntilQuiet(
  state: () => Promise<string>,
  pid: () => number | undefined,
  quietMs = 5000,
  mayBeDone = false,
): Promise<{ seconds: number; peakRssMb: number | null }> {
  const started = Date.now();
  const empty = await state();
  let last = empty;
  let lastChange = started;
  let peak: number | null = null;
  for (;;) {
    await sleep(200);
    const rss = rssMb(pid());
    if (rss !== null) peak = Math.max(peak ?? 0, rss);
    const now = await state();
    if (now !== last) {
      last = now;
      lastChange = Date.now();
    } else if ((mayBeDone || now !== empty) && Date.now() - lastChange > quietMs) {
      return { seconds: (lastChange - started) / 1000, peakRssMb: peak };
    }
  }
}

/**
 * Finishes, before a contender starts, the upkeep the step before it left behind: vacuum of the
 * tables it wrote (autovacuum would otherwise run into the next contender's time) and their dirty
 * pages (a checkpoint). Without it, whoever runs first pays for the workload's million updates.
 */
async function settle(source: pg.Client, dest: pg.Client, log: (line: string) => void): Promise<void> {
  const started = Date.now();
  await source.query('VACUUM (ANALYZE)');
  await dest.query('VACUUM (ANALYZE)');
  await source.query('CHECKPOINT');
  await dest.query('CHECKPOINT');
  log(`  (vacuum and checkpoint: ${((Date.now() - started) / 1000).toFixed(1)} s, not counted)`);
}

/** Rows of the destination that differ from the source (or should not be there), and rows missing. */
async function checkRows(source: pg.Client, dest: pg.Client, table: string): Promise<{ wrongRows: number; missingRows: number }> {
  const digest = `SELECT id::text AS id, md5(row(${COLUMNS.slice(1).join(', ')})::text) AS h FROM`;
  const want = new Map((await source.query<{ id: string; h: string }>(`${digest} ${SOURCE}`)).rows.map((r) => [r.id, r.h]));
  let wrongRows = 0;
  const seen = new Set<string>();
  for (const r of (await dest.query<{ id: string; h: string }>(`${digest} ${table}`)).rows) {
    seen.add(r.id);
    if (want.get(r.id) !== r.h) wrongRows++;
  }
  return { wrongRows, missingRows: [...want.keys()].filter((id) => !seen.has(id)).length };
}

/** A Prometheus histogram's cumulative bucket counts (summed over its label sets), by upper bound. */
export function histogramBuckets(metricsText: string, name: string): Map<number, number> {
  const buckets = new Map<number, number>();
  for (const line of metricsText.split('\n')) {
    const m = new RegExp(`^${name}_bucket\\{.*le="([^"]+)".*\\} (\\d+)`).exec(line);
    if (!m) continue;
    const le = m[1] === '+Inf' ? Infinity : Number(m[1]);
    buckets.set(le, (buckets.get(le) ?? 0) + Number(m[2]));
  }
  return buckets;
}

/** What a histogram counted between two scrapes. */
function histogramSince(before: Map<number, number>, after: Map<number, number>): Map<number, number> {
  return new Map([...after].map(([le, n]) => [le, n - (before.get(le) ?? 0)]));
}

/**
 * Percentiles of a histogram in ms, interpolated linearly inside the bucket the rank falls in, as
 * PromQL's histogram_quantile does.
 */
export function percentiles(buckets: Map<number, number>): { p50Ms: number | null; p99Ms: number | null } {
  const sorted = [...buckets].sort((a, b) => a[0] - b[0]);
  const total = sorted.at(-1)?.[1] ?? 0;
  const at = (q: number) => {
    const rank = q * total;
    let lower = 0;
    let below = 0;
    for (const [le, n] of sorted) {
      if (n >= rank) return Number.isFinite(le) ? (lower + ((le - lower) * (rank - below)) / Math.max(1, n - below)) * 1000 : lower * 1000;
      lower = le;
      below = n;
    }
    return null;
  };
  return total ? { p50Ms: at(0.5), p99Ms: at(0.99) } : { p50Ms: null, p99Ms: null };
}

export interface SteadyResult {
  events: number;
  seconds: number;
  eventsPerSecond: number;
  applyP50Ms: number | null;
  applyP99Ms: number | null;
  endToEndP50Ms: number | null;
  endToEndP99Ms: number | null;
  steadyRssMb: number | null;
  /** trustsync's consumer lag (records, all partitions), the most seen at a one-second sample. */
  maxLagRecords: number;
  /** CPU each process kept busy during the window, in cores: on one machine, they share its cores. */
  cpuCores: Record<string, number>;
  wrongRows: number;
  missingRows: number;
}

/** The fields of /proc/PID/stat after the command name (proc(5)'s third onwards); undefined once the process is gone. */
function procStat(pid: number | undefined): number[] | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat
      .slice(stat.lastIndexOf(')') + 2)
      .split(' ')
      .map(Number);
  } catch {
    return undefined;
  }
}

/**
 * CPU seconds in a process's stat fields: utime + stime, with `reaped` also cutime + cstime (its
 * children that have ended). proc(5)'s fields 14-17, in clock ticks (100 a second on Linux).
 */
const cpuSecondsOf = (f: number[] | undefined, reaped = false) => (f ? (f[11]! + f[12]! + (reaped ? f[13]! + f[14]! : 0)) / 100 : 0);

/** A PostgreSQL cluster's CPU seconds: its postmaster, its live backends, and the backends that have ended. */
function clusterCpuSeconds(postmaster: number | undefined): number {
  if (postmaster === undefined) return 0;
  let total = cpuSecondsOf(procStat(postmaster), true);
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    const f = procStat(Number(pid));
    // Field 4, the parent: a backend's is the postmaster.
    if (f?.[1] === postmaster) total += cpuSecondsOf(f);
  }
  return total;
}

/** A process's CPU seconds so far (0 once it is gone). */
export const processCpuSeconds = (pid: number | undefined) => cpuSecondsOf(procStat(pid));

/**
 * Starts counting the CPU of each named reader (each returns CPU seconds so far); the returned
 * function tells the seconds each spent since.
 */
export function cpuMeter<K extends string>(readers: Record<K, () => number>): () => Record<K, number> {
  const read = () => Object.fromEntries(Object.entries<() => number>(readers).map(([k, r]) => [k, r()])) as Record<K, number>;
  const before = read();
  return () => {
    const now = read();
    return Object.fromEntries(Object.entries<number>(now).map(([k, v]) => [k, v - before[k as K]])) as Record<K, number>;
  };
}

/**
 * Updates at the source at `rate` changes per second for `seconds` (a transaction every 100 ms) while
 * trustsync applies them live; its histograms are read before and after, so only this window counts.
 */
async function steadyLoad(
  source: pg.Client,
  dest: pg.Client,
  metricsUrl: string,
  pids: SteadyPids,
  rate: number,
  keys: number,
  seconds: number,
  table: string,
): Promise<SteadyResult> {
  const scrape = async () => (await fetch(metricsUrl)).text();
  for (let ready = false; !ready; await sleep(500))
    ready = await fetch(metricsUrl.replace('/metrics', '/readyz')).then(
      (r) => r.ok,
      () => false,
    );
  const before = await scrape();
  const random = seededRandom(11);
  const perTick = Math.max(1, Math.min(Math.floor(keys / 2), Math.round(rate / 10)));
  let events = 0;
  let steadyRssMb: number | null = null;
  let maxLagRecords = 0;
  const cpuSpent = cpuMeter({
    trustsync: () => processCpuSeconds(pids.trustsync()),
    'Kafka Connect (Debezium)': () => processCpuSeconds(pids.connect),
    'Kafka broker': () => processCpuSeconds(pids.kafka),
    'source PostgreSQL': () => clusterCpuSeconds(pids.sourcePostgres),
    'destination PostgreSQL': () => clusterCpuSeconds(pids.destinationPostgres),
  });
  const started = Date.now();
  for (let tick = 0; Date.now() - started < seconds * 1000; tick++) {
    await sleep(Math.max(0, started + tick * 100 - Date.now()));
    const ids = updateBatch(keys, 0, perTick, random);
    events += (await source.query(`UPDATE ${SOURCE} SET qty = qty + 1, updated_at = now() WHERE id = ANY($1::bigint[])`, [ids])).rowCount ?? 0;
    if (tick % 10 === 0) {
      steadyRssMb = Math.max(steadyRssMb ?? 0, rssMb(pids.trustsync()) ?? 0);
      const lag = [...(await scrape()).matchAll(/^trustsync_consumer_lag_messages\{[^}]*\} (\S+)$/gm)].reduce((n, m) => n + Number(m[1]), 0);
      maxLagRecords = Math.max(maxLagRecords, lag);
    }
  }
  const elapsed = (Date.now() - started) / 1000;
  const cpuCores = Object.fromEntries(Object.entries(cpuSpent()).map(([k, v]) => [k, v / elapsed]));
  await timeUntilQuiet(() => tableState(dest, table), pids.trustsync, 3000, true);
  const after = await scrape();
  const since = (name: string) => percentiles(histogramSince(histogramBuckets(before, name), histogramBuckets(after, name)));
  const apply = since('trustsync_apply_seconds');
  const endToEnd = since('trustsync_end_to_end_seconds');
  return {
    events,
    seconds: elapsed,
    eventsPerSecond: events / elapsed,
    applyP50Ms: apply.p50Ms,
    applyP99Ms: apply.p99Ms,
    endToEndP50Ms: endToEnd.p50Ms,
    endToEndP99Ms: endToEnd.p99Ms,
    steadyRssMb,
    maxLagRecords,
    cpuCores,
    ...(await checkRows(source, dest, table)),
  };
}

/** The processes whose CPU the live window counts: trustsync's changes, and the rest of the pipeline on this machine. */
interface SteadyPids {
  trustsync: () => number | undefined;
  connect: number | undefined;
  kafka: number | undefined;
  sourcePostgres: number | undefined;
  destinationPostgres: number | undefined;
}

export const waitExit = (child: ChildProcess) => new Promise<void>((r) => (child.exitCode !== null ? r() : child.once('exit', () => r())));

/**
 * The Debezium JDBC sink connector as a competent user tunes it for this load: upserts keyed by the
 * record key, deletes on, a task per partition, the fetch sizes trustsync has (Kafka's 1 MB defaults
 * would keep its batches far below batch.size), batches of 5,000 with its reduction buffer (the newest
 * change per key of a batch only); the URL should carry reWriteBatchedInserts=true.
 */
export function jdbcSinkSettings(topic: string, url: string, username: string, table: string): Record<string, string> {
  return {
    'connector.class': 'io.debezium.connector.jdbc.JdbcSinkConnector',
    'tasks.max': '6',
    topics: topic,
    'connection.url': url,
    'connection.username': username,
    'connection.password': '',
    'insert.mode': 'upsert',
    'primary.key.mode': 'record_key',
    'delete.enabled': 'true',
    'schema.evolution': 'none',
    'database.time_zone': 'UTC',
    'collection.name.format': table,
    'batch.size': '5000',
    'use.reduction.buffer': 'true',
    'consumer.override.max.poll.records': '5000',
    'consumer.override.max.partition.fetch.bytes': String(6 * 1024 * 1024),
    'consumer.override.fetch.max.bytes': String(24 * 1024 * 1024),
    'key.converter': 'org.apache.kafka.connect.json.JsonConverter',
    'key.converter.schemas.enable': 'true',
    'value.converter': 'org.apache.kafka.connect.json.JsonConverter',
    'value.converter.schemas.enable': 'true',
  };
}

/** This run's capture of the bench's source table: JSON with schemas (the JDBC sink needs them; trustsync reads either), six partitions. */
export function benchCapture(s: StackSettings, run: string): { capture: ConnectorConfig; topic: string } {
  const capture = readConnectorFile(join(PACKAGE_DIR, 'connectors', 'postgres-source-json.json'), {
    ...stackConnectorVars(s),
    SERVER: `bench${run}`,
    SCHEMAS: 'bench_src',
    TABLES: SOURCE,
    JSON_SCHEMAS: 'true',
    PARTITIONS: '6',
  });
  return { capture, topic: `cdc.bench${run}.${SOURCE}` };
}

/**
 * A run that was interrupted left its connectors running: its capture's walsender would decode
 * every write of this run, and its slot would hold WAL for good.
 */
export async function removeLeftovers(connect: ConnectClient, log: (line: string) => void): Promise<void> {
  for (const left of await connect.list()) {
    const capture = /^trustsync-bench[0-9a-z]+-source-json$/.test(left.name);
    if (!capture && !/^bench-(mariadb-)?jdbc-sink-[0-9a-z-]+$/.test(left.name)) continue;
    log(`removing ${left.name}, left by an interrupted run …`);
    await (capture ? removePostgresSource(connect, left) : connect.remove(left.name));
  }
}

/** A fresh source table, its capture running, the workload written and every record of it in the topic. */
export async function captureWorkload(
  source: pg.Client,
  kafka: Kafka,
  connect: ConnectClient,
  capture: ConnectorConfig,
  topic: string,
  o: Pick<ContestOptions, 'events' | 'keys' | 'log'>,
  replicaIdentity: Workload['replicaIdentity'] = 'DEFAULT',
): Promise<Workload> {
  await source.query(
    `DROP SCHEMA IF EXISTS bench_src CASCADE; CREATE SCHEMA bench_src; ${TABLE_DDL(SOURCE)}; ALTER TABLE ${SOURCE} REPLICA IDENTITY ${replicaIdentity}`,
  );
  await connect.apply(capture);
  await connect.waitRunning(capture.name);
  o.log(`writing ${o.events.toLocaleString('en')} changes over ${o.keys.toLocaleString('en')} keys at the source (Debezium captures them) …`);
  const captureStarted = Date.now();
  const workload = { ...(await writeWorkload(source, o)), replicaIdentity };
  while ((await topicRecords(kafka, topic)) < workload.records) await sleep(1000);
  workload.captureSeconds = (Date.now() - captureStarted) / 1000;
  o.log(`  ${workload.records.toLocaleString('en')} records in ${topic} after ${workload.captureSeconds.toFixed(0)} s`);
  return workload;
}

/** A contender as the rounds run it: started against a fresh table, watched, stopped. */
interface Contender {
  name: string;
  /** A short name for its tables and groups. */
  slug: string;
  note: string;
  start(table: string, topic: string, tag: string): Promise<Running>;
}

interface Running {
  groupId: string;
  pid(): number | undefined;
  /** Throws when the contender has failed (a connector task FAILED): the round stops there. */
  check(): Promise<void>;
  stop(): Promise<{ p50Ms: number | null; p99Ms: number | null }>;
}

/** Where a contender's consumer group stands: committed at the topic's end, on every partition. */
export async function committedAtEnd(kafka: Kafka, groupId: string, topic: string): Promise<boolean> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const ends = await topicOffsets(admin, topic);
    const [committed] = await admin.fetchOffsets({ groupId, topics: [topic] });
    return ends.every((e) => Number(committed?.partitions.find((p) => p.partition === e.partition)?.offset ?? -1) >= Number(e.high));
  } finally {
    await admin.disconnect();
  }
}

/**
 * Runs until the contender's offsets are committed at the topic's end (as the broker says) and its
 * table has been quiet for `quietMs`, sampling its memory and checking it has not failed; the time
 * is from start to the later of its last write and that commit. Fails past `deadlineMs`.
 */
async function timeUntilDone(
  state: () => Promise<string>,
  running: Running,
  atEnd: () => Promise<boolean>,
  quietMs = 3000,
  deadlineMs = 30 * 60_000,
): Promise<{ seconds: number; peakRssMb: number | null }> {
  const started = Date.now();
  let last = await state();
  let lastChange = started;
  let committedAt: number | null = null;
  let peak: number | null = null;
  for (let tick = 0; ; tick++) {
    await sleep(200);
    const rss = rssMb(running.pid());
    if (rss !== null) peak = Math.max(peak ?? 0, rss);
    const now = await state();
    if (now !== last) {
      last = now;
      lastChange = Date.now();
    }
    if (tick % 5 === 0) await running.check();
    if (committedAt === null && (await atEnd())) committedAt = Date.now();
    if (committedAt !== null && Date.now() - lastChange > quietMs) return { seconds: (Math.max(lastChange, committedAt) - started) / 1000, peakRssMb: peak };
    if (Date.now() - started > deadlineMs)
      throw new Error(`gave up after ${deadlineMs / 60_000} min: ${committedAt === null ? 'offsets not committed at the end of the topic' : 'still writing'}`);
  }
}

/**
 * Appends windows of a topic's own records at its end, as a rebalance or a replay from an old offset
 * delivers them again: on each partition, `fraction` of its records from a third of the way in.
 * Returns how many were appended.
 */
async function redeliverWindows(kafka: Kafka, topic: string, fraction: number): Promise<number> {
  const admin = kafka.admin();
  await admin.connect();
  const ends = await topicOffsets(admin, topic);
  await admin.disconnect();
  const windows = new Map(
    ends.map((e) => {
      const low = Number(e.low);
      const size = Number(e.high) - low;
      const from = low + Math.floor(size / 3);
      return [e.partition, { from, to: from + Math.floor(size * fraction) }];
    }),
  );
  const groupId = `trustsync-bench-redeliver-${Date.now()}`;
  const consumer = kafka.consumer({ groupId, maxBytesPerPartition: 6 * 1024 * 1024 });
  const copies: { partition: number; key: Buffer | null; value: Buffer | null; headers: Record<string, Buffer> }[] = [];
  const left = new Set(windows.keys());
  let done!: () => void;
  const finished = new Promise<void>((r) => (done = r));
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  await consumer.run({
    autoCommit: false,
    eachBatch: async ({ batch }) => {
      const w = windows.get(batch.partition)!;
      for (const m of batch.messages) {
        const offset = Number(m.offset);
        if (offset < w.from || offset >= w.to) continue;
        copies.push({ partition: batch.partition, key: m.key, value: m.value, headers: m.headers as Record<string, Buffer> });
        if (offset === w.to - 1 && left.delete(batch.partition) && left.size === 0) done();
      }
    },
  });
  for (const [partition, w] of windows) consumer.seek({ topic, partition, offset: String(w.from) });
  await finished;
  await consumer.disconnect();
  const producer = kafka.producer();
  await producer.connect();
  // In requests under the broker's 1 MB message-batch limit.
  let chunk: typeof copies = [];
  let bytes = 0;
  for (const c of copies) {
    const size = (c.key?.length ?? 0) + (c.value?.length ?? 0) + 200;
    if (bytes + size > 800_000 && chunk.length) {
      await producer.send({ topic, messages: chunk });
      chunk = [];
      bytes = 0;
    }
    chunk.push(c);
    bytes += size;
  }
  if (chunk.length) await producer.send({ topic, messages: chunk });
  await producer.disconnect();
  const cleanup = kafka.admin();
  await cleanup.connect();
  await cleanup.deleteGroups([groupId]).catch(() => undefined);
  await cleanup.disconnect();
  return copies.length;
}

/** The arguments a JVM runs with, from its command line: heap and collector, as the bench reports them. */
function jvmFlags(pid: number | undefined): string {
  if (pid === undefined) return 'not running';
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8')
      .split('\0')
      .filter((a) => /^-Xm[sx]|^-XX:\+Use\w+GC/.test(a))
      .join(' ');
  } catch {
    return 'unknown';
  }
}

const median = (xs: number[]) => {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

export async function runContest(s: StackSettings, o: ContestOptions): Promise<ContestResult> {
  const e = stackEndpoints(s);
  const kafka = new Kafka({ clientId: 'trustsync-bench', brokers: e.kafkaBrokers, logLevel: logLevel.NOTHING });
  const source = new pg.Client(e.postgresUrl('trustsync_source'));
  const destUrl = stackEndpoints(o.destination).postgresUrl('trustsync_dest');
  const dest = new pg.Client(destUrl);
  // A lost connection fails the query in flight; unhandled, it would also crash the process (Ctrl-C stops the destination's cluster under it).
  for (const db of [source, dest]) db.on('error', (err) => o.log(`connection lost: ${err.message}`));
  await source.connect();
  await dest.connect();
  const connect = new ConnectClient(e.connectUrl);
  const run = Date.now().toString(36);
  let { capture, topic } = benchCapture(s, run);
  const runs: ContenderRun[] = [];
  const connectors = new Set<string>();
  const children = new Set<ChildProcess>();
  const dir = mkdtempSync(join(tmpdir(), 'trustsync-bench-'));
  const metricsPort = 9479;
  const metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
  const jdbcUrl = `jdbc:postgresql://${o.destination.host}:${o.destination.ports.postgres}/trustsync_dest?reWriteBatchedInserts=true`;
  const spawnNode = (args: string[], out: 'ignore' | 'pipe') => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', out, 'inherit'] });
    children.add(child);
    child.once('exit', () => children.delete(child));
    return child;
  };
  const stopChild = async (child: ChildProcess) => {
    child.kill('SIGTERM');
    await waitExit(child);
  };
  /** A consumer script of bench/ that prints its latencies as a JSON line on SIGTERM. */
  const scriptContender = (name: string, slug: string, script: string, note: string, extra: string[] = []): Contender => ({
    name,
    slug,
    note,
    async start(table, topic, tag) {
      const groupId = `bench-${slug}-${run}-${tag}`;
      const child = spawnNode([join(PACKAGE_DIR, 'dist', 'bench', script), e.kafkaBrokers.join(','), topic, groupId, destUrl, table, ...extra], 'pipe');
      let out = '';
      child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      return {
        groupId,
        pid: () => child.pid,
        check: async () => {
          if (child.exitCode !== null) throw new Error(`${name} exited with ${child.exitCode}`);
        },
        stop: async () => {
          await stopChild(child);
          const r = JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as { p50Ms?: number; p99Ms?: number };
          return { p50Ms: r.p50Ms ?? null, p99Ms: r.p99Ms ?? null };
        },
      };
    },
  });
  const flowFile = (table: string, topic: string, tag: string) => {
    const file = join(dir, `flow-${tag}.yaml`);
    writeFileSync(
      file,
      stringify({
        flow: `bench-${run}-${tag}`,
        source: { brokers: e.kafkaBrokers, decoding: 'json' },
        destination: { url: destUrl, tables: [{ topic, table, createIfMissing: false }] },
        batch: { maxRows: 5000, maxWaitMs: 50 },
        metrics: { port: metricsPort },
        log: { level: 'warn' },
      }),
    );
    return file;
  };
  const startTrustsync = (file: string) => spawnNode([join(PACKAGE_DIR, 'bin', 'trustsync.js'), 'run', '--config', file], 'ignore');
  const contenders: Contender[] = [
    {
      name: 'trustsync',
      slug: 'trustsync',
      note: '8 lanes (partitions written at once), batch.maxRows 5000, fetch 6 MB a partition / 24 MB a response; ordering guard and decision history on',
      async start(table, topic, tag) {
        const child = startTrustsync(flowFile(table, topic, tag));
        return {
          groupId: `trustsync-bench-${run}-${tag}`,
          pid: () => child.pid,
          check: async () => {
            if (child.exitCode !== null) throw new Error(`trustsync exited with ${child.exitCode}`);
          },
          stop: async () => {
            const latency = percentiles(histogramBuckets(await (await fetch(metricsUrl)).text(), 'trustsync_apply_seconds'));
            await stopChild(child);
            return latency;
          },
        };
      },
    },
    {
      name: 'Debezium JDBC sink',
      slug: 'jdbc',
      note: 'tasks.max 6 (a task per partition), fetch 6 MB a partition / 24 MB a response, batch.size 5000, reduction buffer on, reWriteBatchedInserts=true; RSS is the whole Connect worker',
      async start(table, topic, tag) {
        const name = `bench-jdbc-sink-${run}-${tag}`;
        connectors.add(name);
        await connect.apply({ name, config: jdbcSinkSettings(topic, jdbcUrl, 'postgres', table) });
        return {
          groupId: `connect-${name}`,
          pid: () => componentPid(s, connectComponent),
          check: async () => {
            const st = await connect.status(name).catch(() => undefined);
            const failed = st && [st.connector, ...st.tasks].find((t) => t.state === 'FAILED');
            if (failed) throw new Error(`the JDBC sink failed: ${(failed as { trace?: string }).trace?.split('\n')[0] ?? 'FAILED'}`);
          },
          stop: async () => {
            await connect.remove(name).catch(() => undefined);
            connectors.delete(name);
            return { p50Ms: null, p99Ms: null };
          },
        };
      },
    },
    scriptContender(
      'ceiling consumer',
      'ceiling',
      'ceiling-consumer.js',
      'kafkajs, the same fetch sizes and 6 partitions at once; newest change per key of each fetched batch, one unnest upsert and one delete; no ledger, history or guard',
      ['6'],
    ),
  ];
  const naive = scriptContender('naive consumer', 'naive', 'naive-consumer.js', 'kafkajs eachMessage, one upsert per message, arrival order');

  try {
    await removeLeftovers(connect, o.log);
    await dest.query('DROP SCHEMA IF EXISTS bench_dst CASCADE; CREATE SCHEMA bench_dst');
    // Fresh tables start with no remembered positions or history either.
    await dest.query(`DO $$ BEGIN
      IF to_regclass('trustsync.key_positions') IS NOT NULL THEN DELETE FROM trustsync.key_positions WHERE target LIKE 'bench\\_dst.%'; END IF;
      IF to_regclass('trustsync.history') IS NOT NULL THEN DELETE FROM trustsync.history WHERE target LIKE 'bench\\_dst.%'; END IF;
      IF to_regclass('trustsync.truncations') IS NOT NULL THEN DELETE FROM trustsync.truncations WHERE target LIKE 'bench\\_dst.%'; END IF;
    END $$`);
    const workload = await captureWorkload(source, kafka, connect, capture, topic, o);
    const kafkaPid = componentPid(s, kafkaComponent);
    const destinationPid = componentPid(o.destination, postgresComponent);

    const measure = async (c: Contender, phase: Phase, round: number, events: number) => {
      await settle(source, dest, o.log);
      const tag = `${phase}-${round}`;
      const table = `bench_dst.items_${c.slug}_${tag.replaceAll('-', '_')}`;
      await dest.query(TABLE_DDL(table));
      const running = await c.start(table, topic, tag);
      const cpuSpent = cpuMeter({
        contender: () => processCpuSeconds(running.pid()),
        destinationPostgres: () => clusterCpuSeconds(destinationPid),
        broker: () => processCpuSeconds(kafkaPid),
      });
      let t: { seconds: number; peakRssMb: number | null };
      try {
        t = await timeUntilDone(
          () => tableState(dest, table),
          running,
          () => committedAtEnd(kafka, running.groupId, topic),
        );
      } catch (err) {
        await running.stop();
        throw err;
      }
      // Read while the contender's process still runs: once it has exited, its CPU is gone from /proc.
      const cpuSeconds = cpuSpent();
      const latency = await running.stop();
      const rows = await checkRows(source, dest, table);
      const cpuTotal = cpuSeconds.contender + cpuSeconds.destinationPostgres + cpuSeconds.broker;
      runs.push({
        contender: c.name,
        phase,
        round,
        events,
        seconds: t.seconds,
        eventsPerSecond: events / t.seconds,
        ...latency,
        peakRssMb: t.peakRssMb,
        cpuSeconds,
        cpuMicrosPerChange: (cpuTotal / events) * 1e6,
        ...rows,
        note: c.note,
      });
      o.log(
        `  ${phase} round ${round}, ${c.name}: ${t.seconds.toFixed(1)} s (${(events / t.seconds).toFixed(0)}/s), ${rows.wrongRows} wrong rows, ${rows.missingRows} missing`,
      );
      return table;
    };

    // Rounds of the stream as captured, the contenders' order rotated each round.
    let lastTrustsyncTag = '';
    for (let round = 1; round <= o.rounds; round++) {
      o.log(`round ${round} of ${o.rounds} …`);
      const order = contenders.map((_, i) => contenders[(i + round - 1) % contenders.length]!);
      for (const c of order) await measure(c, 'stream', round, workload.events);
      lastTrustsyncTag = `stream-${round}`;
    }
    if (o.naive) await measure(naive, 'stream', 1, workload.events);

    // trustsync again, caught up and live (its last round's group resumes at the topic's end), under a steady load at half its rate.
    await settle(source, dest, o.log);
    o.log('trustsync live, at half its rate …');
    const trustsyncRate = median(runs.filter((r) => r.contender === 'trustsync').map((r) => r.eventsPerSecond));
    const live = startTrustsync(join(dir, `flow-${lastTrustsyncTag}.yaml`));
    let steady: SteadyResult;
    try {
      const pids: SteadyPids = {
        trustsync: () => live.pid,
        connect: componentPid(s, connectComponent),
        kafka: kafkaPid,
        sourcePostgres: componentPid(s, postgresComponent),
        destinationPostgres: destinationPid,
      };
      steady = await steadyLoad(
        source,
        dest,
        metricsUrl,
        pids,
        Math.round(trustsyncRate / 2),
        o.keys,
        30,
        `bench_dst.items_trustsync_${lastTrustsyncTag.replaceAll('-', '_')}`,
      );
    } finally {
      await stopChild(live);
    }
    o.log(
      `  ${steady.events.toLocaleString('en')} changes at ${steady.eventsPerSecond.toFixed(0)}/s: apply p99 ${steady.applyP99Ms?.toFixed(0)} ms, end-to-end p99 ${steady.endToEndP99Ms?.toFixed(0)} ms, ${steady.wrongRows} wrong rows, ${steady.missingRows} missing`,
    );

    // Old windows delivered again at the end of the stream, as a rebalance or a replay from an old offset would.
    o.log('re-delivery: windows of old records appended to the topic …');
    const redelivered = await redeliverWindows(kafka, topic, 0.05);
    o.log(`  ${redelivered.toLocaleString('en')} records appended`);
    for (const c of contenders) await measure(c, 'redelivery', 1, workload.events + steady.events + redelivered);

    // The remedy Debezium documents for unchanged TOAST values: the source table's REPLICA IDENTITY FULL.
    o.log('TOAST remedy: the source captured again with REPLICA IDENTITY FULL …');
    await removePostgresSource(connect, capture).catch(() => undefined);
    ({ capture, topic } = benchCapture(s, `${run}f`));
    const remedyWorkload = await captureWorkload(source, kafka, connect, capture, topic, { ...o, events: o.remedyEvents }, 'FULL');
    for (const c of contenders) await measure(c, 'toast-remedy', 1, remedyWorkload.events);

    const summary = (['stream', 'redelivery', 'toast-remedy'] as const).flatMap((phase) =>
      [...contenders, naive].flatMap((c) => {
        const mine = runs.filter((r) => r.phase === phase && r.contender === c.name);
        if (!mine.length) return [];
        const rates = mine.map((r) => r.eventsPerSecond);
        return [
          {
            phase,
            contender: c.name,
            rounds: mine.length,
            medianEventsPerSecond: median(rates),
            minEventsPerSecond: Math.min(...rates),
            maxEventsPerSecond: Math.max(...rates),
            medianCpuMicrosPerChange: median(mine.map((r) => r.cpuMicrosPerChange)),
            wrongRows: Math.max(...mine.map((r) => r.wrongRows)),
            missingRows: Math.max(...mine.map((r) => r.missingRows)),
          },
        ];
      }),
    );
    const streamRate = (name: string) => summary.find((x) => x.phase === 'stream' && x.contender === name)!.medianEventsPerSecond;
    return {
      workload,
      remedyWorkload,
      redeliveredRecords: redelivered,
      jdbcSinkSettings: jdbcSinkSettings('<topic>', jdbcUrl, 'postgres', '<table>'),
      connectJvm: jvmFlags(componentPid(s, connectComponent)),
      steady,
      runs,
      summary,
      trustsyncOverJdbc: streamRate('trustsync') / streamRate('Debezium JDBC sink'),
      trustsyncOverCeiling: streamRate('trustsync') / streamRate('ceiling consumer'),
    };
  } finally {
    for (const child of children) child.kill('SIGKILL');
    for (const name of connectors) await connect.remove(name).catch(() => undefined);
    await removePostgresSource(connect, capture).catch(() => undefined);
    await source.end();
    await dest.end();
  }
}
