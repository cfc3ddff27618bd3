import { join } from 'node:path';
import pg from 'pg';
import { Kafka, Partitioners, logLevel } from 'kafkajs';
import { PACKAGE_DIR, stackEndpoints, type StackSettings } from '../stack/settings.js';
import { stackUp } from '../stack/stack.js';
import { ConnectClient, readConnectorFile, stackConnectorVars } from '../stack/connectors.js';
import { removePostgresSource } from '../stack/postgres-source.js';
import mariadb from 'mariadb';
import { createDemoSchema, demoDestinationSql, demoMariadbDestinationSql } from './schema.js';
import { runWorkload, type WorkloadCounts } from './workload.js';
import { readTopicsToEnd, type ReadMessage } from '../kafka/read-topic.js';
import { loadFlowFile, type FlowConfig } from '../flow/config.js';
import { FlowRunner } from '../flow/run-flow.js';
import { compareTables, waitForConvergence, type TableDiff } from './row-compare.js';
import { reconcileFlow } from '../reconcile/reconcile.js';
import { runCanary, summarizeCanary } from '../observe/canary.js';
import pino from 'pino';
import { topicOffsets } from '../kafka/topics.js';
import { StackError } from '../model/errors.js';
import { openSink } from '../sink/kinds.js';
import type { Explanation } from '../history/explain.js';
import { CrmApi } from './crm-api.js';
import { compareApi } from './api-compare.js';

export interface DemoOptions {
  operations: number;
  log: (line: string) => void;
  /**
   * The kind of destination: the stack's PostgreSQL (flows/shop.yaml), its MariaDB
   * (flows/shop-mariadb.yaml), or the example CRM API started for the demo (flows/shop-http.yaml).
   */
  to?: DemoDestination;
}

/** The demo's flow file for each kind of destination. */
export const DEMO_FLOW_FILES = { postgres: 'flows/shop.yaml', mariadb: 'flows/shop-mariadb.yaml', http: 'flows/shop-http.yaml' } as const;
export type DemoDestination = keyof typeof DEMO_FLOW_FILES;

/** The example API's bearer token, unless the environment names one. */
const DEMO_CRM_TOKEN = 'demo-crm-token';
/** 429s the example API answers while the demo's workload runs: the flow slows down and loses nothing. */
const DEMO_THROTTLES = 40;

export const DEMO_SCHEMA = 'demo';
export const DEMO_SERVER = 'shop';
export const DEMO_DEST_SCHEMA = 'shop';
export const DEMO_TABLES = ['customers', 'orders'] as const;

export interface PartitionSummary {
  partition: number;
  events: number;
  keys: Set<string>;
}

export interface TopicSummary {
  topic: string;
  ops: Record<string, number>;
  partitions: PartitionSummary[];
  /** Keys seen on more than one partition: must stay empty. */
  splitKeys: string[];
}

/**
 * Starts the demo from a clean slate: the source schema with a first batch of customers, and the
 * shipped JSON connector capturing it (snapshot first, then streaming).
 */
export async function prepareDemoSource(s: StackSettings, log: (line: string) => void): Promise<{ source: pg.Client; kafka: Kafka }> {
  const e = stackEndpoints(s);
  const connect = new ConnectClient(e.connectUrl);
  const connector = readConnectorFile(join(PACKAGE_DIR, 'connectors', 'postgres-source-json.json'), { ...stackConnectorVars(s), SERVER: DEMO_SERVER });
  const kafka = new Kafka({ clientId: 'trustsync-demo', brokers: e.kafkaBrokers, logLevel: logLevel.NOTHING });
  const source = new pg.Client(e.postgresUrl('trustsync_source'));
  await source.connect();

  log('resetting the demo source (schema, connector, slot, topics) …');
  await removePostgresSource(connect, connector);
  const admin = kafka.admin();
  await admin.connect();
  const existing = new Set(await admin.listTopics());
  const topics = [...DEMO_TABLES, 'trustsync_canary'].map((t) => demoTopic(t)).filter((t) => existing.has(t));
  if (topics.length) await admin.deleteTopics({ topics });
  await admin.disconnect();
  await source.query(`DROP SCHEMA IF EXISTS ${DEMO_SCHEMA} CASCADE`);
  await createDemoSchema(source, DEMO_SCHEMA);
  await runWorkload(source, DEMO_SCHEMA, 40, 7);

  log(`applying connector ${connector.name} (Debezium PostgreSQL source, JSON) …`);
  await connect.apply(connector);
  await connect.waitRunning(connector.name);
  return { source, kafka };
}

export function demoTopic(table: string): string {
  return `cdc.${DEMO_SERVER}.${DEMO_SCHEMA}.${table}`;
}

/** Tells, per topic and partition, how many Debezium events and which keys. */
export function summarizeTopics(topics: string[], messages: ReadMessage[]): TopicSummary[] {
  const summaries = new Map<string, TopicSummary>(topics.map((t) => [t, { topic: t, ops: {}, partitions: [], splitKeys: [] }]));
  const keysByTopic = new Map<string, Map<string, Set<number>>>();
  for (const { topic, partition, message } of messages) {
    const summary = summaries.get(topic)!;
    let p = summary.partitions.find((x) => x.partition === partition);
    if (!p) summary.partitions.push((p = { partition, events: 0, keys: new Set() }));
    p.events++;
    const key = message.key ? String(JSON.parse(message.key.toString()).id) : '(none)';
    p.keys.add(key);
    const byKey = keysByTopic.get(topic) ?? new Map<string, Set<number>>();
    keysByTopic.set(topic, byKey.set(key, (byKey.get(key) ?? new Set()).add(partition)));
    const op = message.value ? (JSON.parse(message.value.toString()).op as string) : 'tombstone';
    summary.ops[op] = (summary.ops[op] ?? 0) + 1;
  }
  for (const [topic, byKey] of keysByTopic) {
    const summary = summaries.get(topic)!;
    summary.splitKeys = [...byKey].filter(([, ps]) => ps.size > 1).map(([k]) => k);
    summary.partitions.sort((a, b) => a.partition - b.partition);
  }
  return [...summaries.values()];
}

/** Waits until the topics stop growing for a few seconds: the connector has caught up. */
export async function waitForQuiet(kafka: Kafka, topics: string[], quietMs = 3000, timeoutMs = 120_000): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const total = async () => {
      let n = 0n;
      for (const t of topics) for (const o of await topicOffsets(admin, t).catch(() => [])) n += BigInt(o.high);
      return n;
    };
    const deadline = Date.now() + timeoutMs;
    let last = -1n;
    let stableSince = Date.now();
    while (Date.now() < deadline) {
      const now = await total();
      if (now !== last) {
        last = now;
        stableSince = Date.now();
      } else if (now > 0n && Date.now() - stableSince >= quietMs) return;
      await new Promise((r) => setTimeout(r, 500));
    }
  } finally {
    await admin.disconnect();
  }
}

export function formatSummary(summaries: TopicSummary[]): string {
  const lines: string[] = [];
  for (const s of summaries) {
    const ops = Object.entries(s.ops)
      .map(([op, n]) => `${op}=${n}`)
      .join(' ');
    lines.push(`${s.topic}  (${ops})`);
    for (const p of s.partitions) {
      const sample = [...p.keys].slice(0, 8).join(', ');
      lines.push(
        `  partition ${p.partition}: ${String(p.events).padStart(5)} events, ${String(p.keys.size).padStart(4)} keys  [ids ${sample}${p.keys.size > 8 ? ', …' : ''}]`,
      );
    }
    lines.push(s.splitKeys.length === 0 ? '  every key stayed on one partition' : `  KEYS ON SEVERAL PARTITIONS: ${s.splitKeys.join(', ')}`);
  }
  return lines.join('\n');
}

/** Starts the destination from a clean slate: tables, position ledger entries, consumer group, DLQ. */
async function resetDemoDestination(s: StackSettings, config: FlowConfig, kafka: Kafka, to: DemoDestination): Promise<void> {
  if (to === 'mariadb') await resetMariadbDestination(s);
  else if (to === 'http') await resetHttpControl(s);
  else await resetPostgresDestination(s);
  const admin = kafka.admin();
  await admin.connect();
  try {
    await admin.deleteGroups([config.group]).catch(() => undefined);
    const existing = new Set(await admin.listTopics());
    const topics = [config.dlqTopic, ...config.tables.flatMap((t) => (t.state ? [t.state.topic] : []))].filter((t) => existing.has(t));
    if (topics.length) await admin.deleteTopics({ topics });
  } finally {
    await admin.disconnect();
  }
}

async function resetMariadbDestination(s: StackSettings): Promise<void> {
  const url = new URL(stackEndpoints(s).mariadbUrl(DEMO_DEST_SCHEMA));
  const db = await mariadb.createConnection({ host: url.hostname, port: Number(url.port), user: 'root' });
  try {
    await db.query(`DROP DATABASE IF EXISTS \`${DEMO_DEST_SCHEMA}\``);
    for (const statement of demoMariadbDestinationSql(DEMO_DEST_SCHEMA)) await db.query(statement);
    for (const kept of ['key_positions', 'history', 'entity_snapshots'])
      await db.query(`DELETE FROM trustsync.${kept} WHERE target LIKE ?`, [`${DEMO_DEST_SCHEMA}.%`]).catch(() => undefined);
  } finally {
    await db.end();
  }
}

/** The example API starts empty: its keys' positions, sent marks and history in the control database go too. */
async function resetHttpControl(s: StackSettings): Promise<void> {
  const control = new pg.Client(stackEndpoints(s).postgresUrl('trustsync_dest'));
  await control.connect();
  try {
    for (const kept of ['key_positions', 'sent_positions', 'history'])
      await control.query(`DELETE FROM trustsync.${kept} WHERE target LIKE 'crm.%'`).catch(() => undefined);
  } finally {
    await control.end();
  }
}

async function resetPostgresDestination(s: StackSettings): Promise<void> {
  const dest = new pg.Client(stackEndpoints(s).postgresUrl('trustsync_dest'));
  await dest.connect();
  try {
    await dest.query(`DROP SCHEMA IF EXISTS ${DEMO_DEST_SCHEMA} CASCADE`);
    await dest.query(demoDestinationSql(DEMO_DEST_SCHEMA));
    // The demo starts its world anew: its keys' positions, TRUNCATEs and history go with its tables.
    for (const kept of ['key_positions', 'truncations', 'history'])
      await dest.query(`DELETE FROM trustsync.${kept} WHERE target LIKE $1`, [`${DEMO_DEST_SCHEMA}.%`]).catch(() => undefined);
  } finally {
    await dest.end();
  }
}

export interface DemoResult {
  counts: WorkloadCounts;
  summaries: TopicSummary[];
  tables: { table: string; rows: number; diff: TableDiff }[];
  decisions: Record<string, number>;
  metricsUrl: string | undefined;
  /** The compacted state topics and how many records each holds. */
  stateTopics: { topic: string; records: number }[];
  /** `trustsync canary` once the flow settled. */
  canary: string;
  /** The flow's consumer group. */
  group: string;
  /** `trustsync reconcile` of the flow once it settled (none for an API: it cannot be read back in bulk). */
  reconcile: { table: string; sourceRows: number; buckets: number; mismatchedBuckets: number; differences: number }[];
  /** Into the example API: what it answered, and the story of one customer from the control database. */
  api?: { throttled: number; replays: number; requests: number; story: Explanation; storyKey: string };
}

/**
 * The main job end to end: Debezium captures the shop, `trustsync run`'s engine applies it to the
 * destination while the source changes, Kafka re-delivers old records and a poison record arrives,
 * and the destination ends equal to the source, with every decision counted.
 */
export async function runDemo(s: StackSettings, options: DemoOptions): Promise<DemoResult> {
  const { log } = options;
  const status = await stackUp(s, log);
  if (!status.healthy) throw new StackError('the local stack is not healthy.', 'see `trustsync stack status`, then `trustsync stack up`.');
  const { source, kafka } = await prepareDemoSource(s, log);
  const to = options.to ?? 'postgres';
  if (to === 'http') process.env.TRUSTSYNC_CRM_TOKEN ||= DEMO_CRM_TOKEN;
  const config = { ...loadFlowFile(join(PACKAGE_DIR, DEMO_FLOW_FILES[to])), metrics: { port: 0, host: s.host, lagIntervalMs: 15_000 } };
  await resetDemoDestination(s, config, kafka, to);
  const api = to === 'http' ? await startDemoApi(config, log) : undefined;
  const runner = new FlowRunner(config, pino({ level: 'warn' }));
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  try {
    log(`starting flow ${config.flow}: ${config.tables.map((t) => `${t.topic} → ${t.table.schema}.${t.table.table}`).join(', ')}`);
    await runner.start();
    await producer.connect();

    if (api) {
      api.throttleNext(DEMO_THROTTLES, 1);
      log(`the API will answer the next ${DEMO_THROTTLES} requests with 429 Too Many Requests (Retry-After: 1)`);
    }
    log(`writing ${options.operations} changes to ${DEMO_SCHEMA}.customers and ${DEMO_SCHEMA}.orders …`);
    let reported = 0;
    const counts = await runWorkload(source, DEMO_SCHEMA, options.operations, 42, (done) => {
      if (done - reported >= Math.max(100, options.operations / 5)) {
        reported = done;
        log(`  ${done}/${options.operations}`);
      }
    });
    log(
      `source: ${counts.customersInserted} customers added, ${counts.customersUpdated} updated, ${counts.customersDeleted} deleted; ` +
        `${counts.ordersInserted} orders placed, ${counts.ordersUpdated} updated`,
    );
    const topics = DEMO_TABLES.map((t) => demoTopic(t));
    await waitForQuiet(kafka, topics);

    // At-least-once delivery in action: a slice of old records arrives again, plus one that is not a change at all.
    const old = await readTopicsToEnd(kafka, topics);
    const again = old.filter((_, i) => i % 7 === 0);
    await producer.send({ topic: topics[0]!, messages: [{ key: Buffer.from('{"id":1}'), value: Buffer.from('{"op":"u","after":{"id":1'), partition: 0 }] });
    for (const topic of topics) {
      const messages = again.filter((m) => m.topic === topic).map((m) => ({ key: m.message.key, value: m.message.value, partition: m.partition }));
      if (messages.length) await producer.send({ topic, messages });
    }
    log(`re-delivered ${again.length} old records and one malformed record`);

    log('waiting for the destination to equal the source, row for row …');
    const pairs = DEMO_TABLES.map((t): [string, string] => [`${DEMO_SCHEMA}.${t}`, `${DEMO_DEST_SCHEMA}.${t}`]);
    const tables = api
      ? await convergedAtApi(source, api, 120_000)
      : to === 'mariadb'
        ? await convergedAcross(config, 120_000)
        : await convergedInPostgres(s, source, pairs);
    // Wait until every re-delivered record has been judged, so the counts below are final.
    const expected = old.length + again.length + 1;
    const deadline = Date.now() + 60_000;
    while ((await runner.metrics.total('received')) < expected && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    const decisions: Record<string, number> = {
      received: await runner.metrics.total('received'),
      applied: await runner.metrics.total('applied'),
      'superseded in its batch': await runner.metrics.total('skipped', 'superseded'),
      'skipped (stale)': await runner.metrics.total('skipped', 'stale'),
      'skipped (duplicate)': await runner.metrics.total('skipped', 'duplicate'),
      'dead-lettered': await runner.metrics.total('dead_lettered'),
      'ignored (Kafka tombstones)': await runner.metrics.total('ignored'),
    };
    const summaries = summarizeTopics(topics, old);
    const stateTopics: DemoResult['stateTopics'] = [];
    const admin = kafka.admin();
    await admin.connect();
    try {
      for (const t of config.tables) {
        if (!t.state) continue;
        const offsets = await topicOffsets(admin, t.state.topic);
        stateTopics.push({ topic: t.state.topic, records: offsets.reduce((n, o) => n + Number(o.high) - Number(o.low), 0) });
      }
    } finally {
      await admin.disconnect();
    }
    const canary = config.canary ? summarizeCanary(await runCanary(config, 5, 30_000)) : 'not configured for this flow';
    if (api) {
      const storyKey = [...api.records('customers').keys()].sort((a, b) => Number(a) - Number(b))[0] ?? '1';
      const story = await apiStory(config, 'crm.customers', storyKey);
      const requests = api.requests.filter((r) => r.method !== 'HEAD');
      return {
        counts,
        summaries: summarizeTopics(topics, old),
        tables,
        decisions,
        metricsUrl: runner.metricsAddress,
        stateTopics: [],
        reconcile: [],
        canary,
        group: config.group,
        api: { throttled: requests.filter((r) => r.status === 429).length, replays: api.replays, requests: requests.length, story, storyKey },
      };
    }
    // The flow's own canaries keep arriving: a settle time tells them from drift.
    const reconciled = await reconcileFlow(config, { buckets: 64, settleMs: 2000, repair: false, progress: () => undefined, log: pino({ level: 'warn' }) });
    const reconcile = reconciled.tables.map((t) => ({
      table: t.destination,
      sourceRows: t.rows.source,
      buckets: t.buckets,
      mismatchedBuckets: t.mismatchedBuckets,
      differences: t.differences.length,
    }));
    return { counts, summaries, tables, decisions, metricsUrl: runner.metricsAddress, stateTopics, reconcile, canary, group: config.group };
  } finally {
    await producer.disconnect();
    await runner.stop();
    await api?.stop();
    await source.end();
  }
}

/** The example CRM API, on the port the flow file's destination.url names, with the token it sends. */
async function startDemoApi(config: FlowConfig, log: (line: string) => void): Promise<CrmApi> {
  const url = new URL(config.destinationUrl);
  const api = await new CrmApi({ port: Number(url.port), token: process.env.TRUSTSYNC_CRM_TOKEN }).start();
  log(`example CRM API listening on ${api.url} (its own store; honours Idempotency-Key)`);
  return api;
}

/** Record by record: the API's store against the source's rows, until equal or the time is up. */
async function convergedAtApi(source: pg.Client, api: CrmApi, timeoutMs: number): Promise<DemoResult['tables']> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const compared = await compareApi(source, DEMO_SCHEMA, api);
    const equal = compared.every((c) => c.diff.missing.length + c.diff.extra.length + c.diff.wrong.length === 0);
    if (equal || Date.now() > deadline) return compared.map((c) => ({ table: `crm.${c.collection} (API)`, rows: c.records, diff: c.diff }));
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** `trustsync explain` of one record, from the flow's control database. */
async function apiStory(config: FlowConfig, target: string, key: string): Promise<Explanation> {
  const sink = openSink(config.destinationUrl, { name: `trustsync:${config.flow}:demo`, connections: 1, settings: config.destinationSettings });
  try {
    return await sink.explain(target, key);
  } finally {
    await sink.close();
  }
}

/** Row by row, inside PostgreSQL: each side hashes its rows, only ids and hashes travel. */
async function convergedInPostgres(s: StackSettings, source: pg.Client, pairs: [string, string][]): Promise<DemoResult['tables']> {
  const dest = new pg.Client(stackEndpoints(s).postgresUrl('trustsync_dest'));
  await dest.connect();
  try {
    await waitForConvergence(source, dest, pairs, 120_000);
    const tables: DemoResult['tables'] = [];
    for (const [src, dst] of pairs) {
      const rows = Number((await dest.query(`SELECT count(*) FROM ${dst}`)).rows[0].count);
      tables.push({ table: dst, rows, diff: await compareTables(source, dest, src, dst) });
    }
    return tables;
  } finally {
    await dest.end();
  }
}

/** Row by row across kinds: reconcile's canonical text, compared until it finds nothing. */
async function convergedAcross(config: FlowConfig, timeoutMs: number): Promise<DemoResult['tables']> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const report = await reconcileFlow(config, { buckets: 64, settleMs: 0, repair: false, progress: () => undefined, log: pino({ level: 'warn' }) });
    if (report.clean || Date.now() > deadline)
      return report.tables.map((t) => ({
        table: t.destination,
        rows: t.rows.destination,
        diff: {
          missing: t.differences.filter((d) => d.kind === 'missing').map((d) => d.key),
          extra: t.differences.filter((d) => d.kind === 'extra').map((d) => d.key),
          wrong: [...new Set(t.differences.filter((d) => d.kind === 'field').map((d) => d.key))],
        },
      }));
    await new Promise((r) => setTimeout(r, 1000));
  }
}
