import { stringify } from 'yaml';
import { targetName, type TableName } from '../model/table.js';
import type { CaptureReadiness } from '../sink/source.js';

export interface InitOptions {
  /** The flow's name: its consumer group, DLQ topic, connector, slot and topic prefix derive from it. */
  name: string;
  /** The source database's URL, as the connector and the flow reach it. */
  sourceUrl: string;
  brokers: string[];
  destinationUrl: string;
  /** The destination schema each table is written into; by default the source's own. */
  destinationSchema?: string;
}

/** What `trustsync init` writes: a flow file, a Debezium connector, and what to know before running them. */
export interface InitResult {
  flow: string;
  connector: { name: string; config: Record<string, string> };
  /** Each a line: what the source's tables need, or what to know of them. */
  advice: string[];
  /** Problems that keep the capture from working: nothing is written while there are any. */
  blocking: string[];
}

/** What keeps a capture from working, as found at the source: for the source itself, or table by table (`table`: its index). */
export interface CaptureProblem {
  setting?: 'logDecoding' | 'replication';
  table?: number;
  problem: string;
  fix: string;
}

/** The problems `init` refuses and `validate --online` reports: log decoding, the right to stream, and each table's key. */
export function captureProblems(readiness: CaptureReadiness): CaptureProblem[] {
  const problems: CaptureProblem[] = [];
  if (!readiness.logDecoding.ok)
    problems.push({ setting: 'logDecoding', problem: `the source has ${readiness.logDecoding.detail}`, fix: 'set wal_level = logical and restart it' });
  if (!readiness.replication.ok)
    problems.push({ setting: 'replication', problem: readiness.replication.detail, fix: 'ALTER ROLE … REPLICATION, or capture as a user that has it' });
  readiness.tables.forEach((t, table) => {
    const name = targetName(t.table);
    if (!t.exists) problems.push({ table, problem: `${name} does not exist at the source`, fix: 'name an existing table as schema.table' });
    else if (t.replicaIdentity === 'nothing')
      problems.push({
        table,
        problem: `${name} has REPLICA IDENTITY NOTHING: its updates and deletes would not be captured`,
        fix: `ALTER TABLE ${name} REPLICA IDENTITY DEFAULT`,
      });
    else if (t.keyColumns.length === 0)
      problems.push({
        table,
        problem: `${name} has no primary key: Debezium's records would have no key to order by`,
        fix: `ALTER TABLE ${name} ADD PRIMARY KEY (…)`,
      });
  });
  return problems;
}

/** A URL's password left out for the environment to give: `${VARIABLE}` in its place. */
function withoutPassword(url: string, variable: string): { url: string; password: string | undefined } {
  const u = new URL(url);
  const password = u.password ? decodeURIComponent(u.password) : undefined;
  if (!u.password) return { url, password };
  u.password = 'TRUSTSYNC-PASSWORD';
  return { url: u.toString().replace('TRUSTSYNC-PASSWORD', `\${${variable}}`), password };
}

/**
 * The flow file and Debezium PostgreSQL connector for capturing `readiness.tables` into a
 * destination, from what the source says of them. Passwords never go into either file: each names
 * a variable for `trustsync run` and `trustsync connectors apply` to read.
 */
export function initFlow(readiness: CaptureReadiness, o: InitOptions): InitResult {
  const blocking = captureProblems(readiness).map((p) => `${p.problem} — ${p.fix}`);
  const advice = readiness.tables
    .filter((t) => t.exists && t.outOfLine.length)
    .map(
      (t) =>
        `${targetName(t.table)}: ${t.outOfLine.join(', ')} may be stored out of line (TOAST); an update that leaves them alone sends a placeholder, and trustsync keeps the stored value — other consumers of the topics need REPLICA IDENTITY FULL`,
    );
  const source = new URL(o.sourceUrl);
  const database = decodeURIComponent(source.pathname.replace(/^\//, ''));
  const slot = `trustsync_${o.name.replace(/[^A-Za-z0-9_]/g, '_').toLowerCase()}`;
  const prefix = `cdc.${o.name}`;
  const tables: readonly TableName[] = readiness.tables.map((t) => t.table);
  const sourceDb = withoutPassword(o.sourceUrl, 'SOURCE_DB_PASSWORD');
  const destination = withoutPassword(o.destinationUrl, 'DESTINATION_DB_PASSWORD');
  const doc = {
    flow: o.name,
    source: { brokers: o.brokers, decoding: 'json', database: sourceDb.url },
    destination: {
      url: destination.url,
      tables: tables.map((t) => ({
        topic: `${prefix}.${t.schema}.${t.table}`,
        table: `${o.destinationSchema ?? t.schema}.${t.table}`,
        sourceTable: targetName(t),
      })),
    },
    dlq: { topic: `trustsync.dlq.${o.name}` },
    metrics: { port: 9464 },
  };
  const connector = {
    name: `trustsync-${o.name}-source`,
    config: {
      'connector.class': 'io.debezium.connector.postgresql.PostgresConnector',
      'tasks.max': '1',
      'plugin.name': 'pgoutput',
      'database.hostname': source.hostname,
      'database.port': source.port || '5432',
      'database.user': decodeURIComponent(source.username),
      'database.password': sourceDb.password === undefined ? '${SOURCE_DB_PASSWORD:-}' : '${SOURCE_DB_PASSWORD}',
      'database.dbname': database,
      'topic.prefix': prefix,
      'table.include.list': tables.map((t) => targetName(t)).join(','),
      'slot.name': slot,
      'publication.name': slot,
      'publication.autocreate.mode': 'filtered',
      'snapshot.mode': 'initial',
      'tombstones.on.delete': 'true',
      'heartbeat.interval.ms': '10000',
      'decimal.handling.mode': 'string',
      'time.precision.mode': 'adaptive_time_microseconds',
      'key.converter': 'org.apache.kafka.connect.json.JsonConverter',
      'key.converter.schemas.enable': 'false',
      'value.converter': 'org.apache.kafka.connect.json.JsonConverter',
      'value.converter.schemas.enable': 'true',
    },
  };
  const header = [
    `# Written by trustsync init for ${tables.map((t) => targetName(t)).join(', ')}.`,
    ...([sourceDb, destination].filter((d) => d.password !== undefined).length
      ? ['# Passwords are read from SOURCE_DB_PASSWORD and DESTINATION_DB_PASSWORD when the flow starts.']
      : []),
  ];
  return { flow: `${header.join('\n')}\n${stringify(doc)}`, connector, advice, blocking };
}
