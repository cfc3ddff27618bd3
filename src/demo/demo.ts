import { join } from 'node:path';
import pg from 'pg';
import { Kafka, logLevel } from 'kafkajs';
import { PACKAGE_DIR, stackEndpoints, type StackSettings } from '../stack/settings.js';
import { stackUp } from '../stack/stack.js';
import { ConnectClient, readConnectorFile, removePostgresSource, stackConnectorVars } from '../stack/connectors.js';
import { createDemoSchema } from './schema.js';
import { runWorkload, type WorkloadCounts } from './workload.js';
import { readTopicsToEnd } from '../flow/read-topic.js';

export interface DemoOptions {
  operations: number;
  log: (line: string) => void;
}

export const DEMO_SCHEMA = 'demo';
export const DEMO_SERVER = 'shop';
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
  await removePostgresSource(connect, connector, e.postgresUrl);
  const admin = kafka.admin();
  await admin.connect();
  const existing = new Set(await admin.listTopics());
  const topics = DEMO_TABLES.map((t) => demoTopic(t)).filter((t) => existing.has(t));
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

/** Reads each topic to its current end and tells, per partition, how many events and which keys. */
export async function summarizeTopics(kafka: Kafka, topics: string[]): Promise<TopicSummary[]> {
  const summaries = new Map<string, TopicSummary>(topics.map((t) => [t, { topic: t, ops: {}, partitions: [], splitKeys: [] }]));
  const keysByTopic = new Map<string, Map<string, Set<number>>>();
  for (const { topic, partition, message } of await readTopicsToEnd(kafka, topics)) {
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
      for (const t of topics) for (const o of await admin.fetchTopicOffsets(t).catch(() => [])) n += BigInt(o.high);
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
    const ops = Object.entries(s.ops).map(([op, n]) => `${op}=${n}`).join(' ');
    lines.push(`${s.topic}  (${ops})`);
    for (const p of s.partitions) {
      const sample = [...p.keys].slice(0, 8).join(', ');
      lines.push(`  partition ${p.partition}: ${String(p.events).padStart(5)} events, ${String(p.keys.size).padStart(4)} keys  [ids ${sample}${p.keys.size > 8 ? ', …' : ''}]`);
    }
    lines.push(s.splitKeys.length === 0 ? '  every key stayed on one partition' : `  KEYS ON SEVERAL PARTITIONS: ${s.splitKeys.join(', ')}`);
  }
  return lines.join('\n');
}

export async function runDemo(s: StackSettings, options: DemoOptions): Promise<{ counts: WorkloadCounts; summaries: TopicSummary[] }> {
  const { log } = options;
  const status = await stackUp(s, log);
  if (!status.healthy) throw new Error('the local stack is not healthy; see `trustsync stack status`');
  const { source, kafka } = await prepareDemoSource(s, log);
  try {
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
    log('waiting for Debezium to deliver every change …');
    await waitForQuiet(kafka, topics);
    const summaries = await summarizeTopics(kafka, topics);
    return { counts, summaries };
  } finally {
    await source.end();
  }
}
