import pg from 'pg';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Kafka, logLevel, type Admin } from 'kafkajs';
import { PACKAGE_DIR, stackEndpoints, stackSettings } from '../../src/stack/settings.js';
import { readTopicsToEnd } from '../../src/kafka/read-topic.js';
import { ConnectClient, readConnectorFile, stackConnectorVars, type ConnectorConfig } from '../../src/stack/connectors.js';
import { removePostgresSource } from '../../src/stack/postgres-source.js';
import { topicOffsets } from '../../src/kafka/topics.js';

export const settings = stackSettings();
export const endpoints = stackEndpoints(settings);

/** A name no other test file (or earlier run) uses: schemas, slots, topics and groups stay apart. */
export function uniqueName(prefix: string): string {
  return `${prefix}_${randomBytes(3).toString('hex')}`;
}

export function kafkaClient(): Kafka {
  return new Kafka({ clientId: 'trustsync-test', brokers: endpoints.kafkaBrokers, logLevel: logLevel.NOTHING });
}

export async function pgClient(database = 'trustsync_source'): Promise<pg.Client> {
  const client = new pg.Client(endpoints.postgresUrl(database));
  await client.connect();
  return client;
}

export type Variant = 'json' | 'avro';

/**
 * Captures `schema`'s tables with the shipped connector file of the given variant,
 * and removes the connector, its slot and publication again on `stop`.
 */
export class SourceCapture {
  readonly connector: ConnectorConfig;
  private readonly connect = new ConnectClient(endpoints.connectUrl);

  constructor(
    readonly server: string,
    readonly schema: string,
    tables: string[],
    readonly variant: Variant,
    extraVars: Record<string, string> = {},
  ) {
    this.connector = readConnectorFile(join(PACKAGE_DIR, 'connectors', `postgres-source-${variant}.json`), {
      ...stackConnectorVars(settings),
      SERVER: server,
      SCHEMAS: schema,
      TABLES: tables.map((t) => `${schema}.${t}`).join(','),
      ...extraVars,
    });
  }

  topic(table: string): string {
    return `cdc.${this.server}.${this.schema}.${table}`;
  }

  async start(): Promise<void> {
    await this.connect.apply(this.connector);
    await this.connect.waitRunning(this.connector.name);
  }

  async stop(): Promise<void> {
    await removePostgresSource(this.connect, this.connector);
  }
}

/** Waits until the topic's partitions together hold at least `count` records. */
export async function waitForRecords(admin: Admin, topic: string, count: number, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const offsets = await topicOffsets(admin, topic).catch(() => []);
    const total = offsets.reduce((n, p) => n + Number(p.high) - Number(p.low), 0);
    if (total >= count) return;
    if (Date.now() > deadline) throw new Error(`${topic} holds ${total} records after ${timeoutMs / 1000}s, expected ${count}`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

export interface ReadRecord {
  partition: number;
  offset: string;
  key: Buffer | null;
  value: Buffer | null;
}

/** Waits for `count` records, then reads the topic to its end. */
export async function readRecords(kafka: Kafka, topic: string, count: number, timeoutMs = 60_000): Promise<ReadRecord[]> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    await waitForRecords(admin, topic, count, timeoutMs);
  } finally {
    await admin.disconnect();
  }
  return (await readTopicsToEnd(kafka, [topic], timeoutMs)).map(({ partition, message }) => ({
    partition,
    offset: message.offset,
    key: message.key,
    value: message.value,
  }));
}
