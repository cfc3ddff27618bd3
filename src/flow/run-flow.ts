import type { Server } from 'node:http';
import { Kafka, Partitioners, logLevel, type Admin, type Consumer, type EachBatchPayload, type Producer } from 'kafkajs';
import pg from 'pg';
import pino, { type Logger } from 'pino';
import type { FlowConfig } from './config.js';
import { AvroDecoder, JsonDecoder, type RawRecord, type RecordDecoder } from '../decode/debezium.js';
import { avroSchemaRegistry } from '../decode/avro-registry.js';
import { PostgresSink, type TableMapping } from '../sink/postgres-sink.js';
import { FlowMetrics, serveMetrics } from '../observe/metrics.js';
import { applyRecords, type ApplyContext } from './apply-records.js';
import { ensureDlqTopic, sendDeadLetters } from './dlq.js';
import { waitForLeaders } from './topics.js';
import { prepareGovernance, type GovernedTables } from './governance.js';

/** Shows where a URL points without its password. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@');
}

export function createLogger(flow: string, level: string): Logger {
  return pino({ level, base: { flow }, redact: { paths: ['password', '*.password', 'url', '*.url'], censor: '***' } });
}

/**
 * kafkajs logs through the flow's logger. It reports every retriable broker hiccup (a coordinator
 * still loading, a leader moving) as ERROR; the client retries those itself, so they are warnings here.
 */
export function kafkaLogCreator(log: Logger) {
  return () =>
    ({ level, log: entry }: { level: number; log: { message: string } & Record<string, unknown> }) => {
      const { message, ...rest } = entry;
      const fields = { component: 'kafkajs', ...rest };
      if (level <= logLevel.WARN) log.warn(fields, message);
      else if (level === logLevel.INFO) log.debug(fields, message);
    };
}

export function createDecoder(config: FlowConfig): RecordDecoder {
  return config.decoding === 'avro' ? new AvroDecoder(avroSchemaRegistry(config.registryUrl!)) : new JsonDecoder();
}

/** Everything a flow holds open: Kafka clients, the destination pool, the metrics endpoint. */
export class FlowRunner {
  readonly metrics: FlowMetrics;
  readonly log: Logger;
  private readonly kafka: Kafka;
  private readonly consumer: Consumer;
  private readonly producer: Producer;
  private readonly pool: pg.Pool;
  private readonly sink: PostgresSink;
  private readonly decoder: RecordDecoder;
  private readonly tables: Map<string, TableMapping>;
  private governed?: GovernedTables;
  private server?: Server;
  private joined = false;
  private running = false;
  /** Set once stop or failure begins: start gives up where it is, loops end. */
  private closing = false;
  private failure?: Error;
  private stopped!: Promise<void>;
  private settle!: (err?: Error) => void;
  private lastPurge = 0;
  /** When each partition last committed, to tell a stalled partition from a quiet one. */
  private readonly progressAt = new Map<string, number>();

  constructor(readonly config: FlowConfig, log?: Logger) {
    this.log = log ?? createLogger(config.flow, config.logLevel);
    this.metrics = new FlowMetrics(config.flow);
    this.kafka = new Kafka({
      clientId: `trustsync-${config.flow}`,
      brokers: config.brokers,
      logLevel: logLevel.INFO,
      logCreator: kafkaLogCreator(this.log),
      retry: { retries: 8 },
    });
    this.consumer = this.kafka.consumer({
      groupId: config.group,
      maxWaitTimeInMs: config.batch.maxWaitMs,
      // A process that dies (kill -9) holds its partitions until the session expires: keep that short.
      sessionTimeout: 10_000,
      heartbeatInterval: 1_000,
      allowAutoTopicCreation: false,
    });
    // Dead letters must reach the broker before the consumer may commit past them: keep trying.
    this.producer = this.kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: false,
      createPartitioner: Partitioners.DefaultPartitioner,
      retry: { retries: Number.MAX_SAFE_INTEGER, maxRetryTime: 30_000 },
    });
    // The application name shows whose sessions these are in pg_stat_activity.
    this.pool = new pg.Pool({ connectionString: config.destinationUrl, max: 8, connectionTimeoutMillis: 10_000, application_name: `trustsync:${config.flow}`.slice(0, 63) });
    // An idle client that loses its server must not crash the process; the next checkout fails and is retried.
    this.pool.on('error', (err) => this.log.warn({ err: err.message }, 'destination connection lost'));
    this.sink = new PostgresSink(this.pool);
    this.decoder = createDecoder(config);
    this.tables = new Map(config.tables.map((t) => [t.topic, t]));
  }

  private context(mapping: TableMapping): ApplyContext {
    const governance = this.governed?.byTopic.get(mapping.topic);
    return {
      governed: governance ? { tables: this.governed!, governance } : undefined,
      flow: this.config.flow,
      mapping,
      decoder: this.decoder,
      sink: this.sink,
      retry: this.config.retry,
      truncate: this.config.truncate,
      metrics: this.metrics,
      log: this.log,
    };
  }

  /** Starts consuming; resolves when the consumer has been asked to run. `done` settles when it stops. */
  async start(): Promise<void> {
    const { config, log } = this;
    this.stopped = new Promise<void>((resolve, reject) => (this.settle = (err) => (err ? reject(err) : resolve())));
    // A failure is reported through `done` and the log; unawaited, it must not also surface as an unhandled rejection.
    this.stopped.catch(() => undefined);
    if (config.metrics) {
      this.server = await serveMetrics(this.metrics, { live: () => this.running, ready: () => this.readiness() }, config.metrics.port, config.metrics.host);
      log.info({ port: config.metrics.port }, 'metrics on /metrics, health on /healthz and /readyz');
    }
    await this.sink.prepare();
    this.governed = await prepareGovernance(config, this.sink, log);
    if (this.governed) this.metrics.reviewOpen.set({ flow: config.flow }, await this.governed.sink.openReviews(this.governed.targets));
    const admin = this.kafka.admin();
    await admin.connect();
    try {
      await ensureDlqTopic(admin, config.dlqTopic);
      const dlq = await admin.fetchTopicOffsets(config.dlqTopic);
      this.metrics.dlqDepth.set({ flow: config.flow, topic: config.dlqTopic }, dlq.reduce((n, o) => n + Number(BigInt(o.high) - BigInt(o.low)), 0));
      await this.waitForTopics(admin);
    } finally {
      await admin.disconnect();
    }
    // Stopped while waiting (SIGTERM before the topics appeared): nothing more to start.
    if (this.closing) return;
    await this.producer.connect();
    await this.consumer.connect();
    this.consumer.on(this.consumer.events.GROUP_JOIN, (e) => {
      this.joined = true;
      log.info({ assignment: e.payload.memberAssignment }, 'joined the consumer group');
    });
    this.consumer.on(this.consumer.events.CRASH, (e) => {
      if (!e.payload.restart) void this.fail(e.payload.error);
    });
    await this.consumer.subscribe({ topics: [...this.tables.keys()], fromBeginning: config.fromBeginning });
    this.running = true;
    await this.consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      // Each partition is its own lane: one held by retries does not stop the others.
      partitionsConsumedConcurrently: 8,
      eachBatch: (payload) => this.eachBatch(payload),
    });
    log.info({ topics: [...this.tables.keys()], group: config.group, destination: redactUrl(config.destinationUrl) }, 'flow running');
  }

  /** Debezium creates a table's topic with its first event: a flow started first waits for it, saying so. */
  private async waitForTopics(admin: Admin): Promise<void> {
    let lastSaid = 0;
    while (!this.closing) {
      const existing = new Set(await admin.listTopics());
      const missing = [...this.tables.keys()].filter((t) => !existing.has(t));
      if (missing.length === 0) {
        // Just created, a topic may not have its leaders yet; subscribing then fails.
        for (const t of this.tables.keys()) await waitForLeaders(admin, t);
        return;
      }
      if (Date.now() - lastSaid > 30_000) {
        lastSaid = Date.now();
        this.log.warn({ missing }, 'waiting for topics to exist (is the source connector running?)');
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
  }

  /** Where /metrics is served, once started with a metrics port. */
  get metricsAddress(): string | undefined {
    const address = this.server?.address();
    return address && typeof address === 'object' ? `http://${address.address}:${address.port}/metrics` : undefined;
  }

  /** Settles when the flow stops: resolves after a clean stop, rejects with the error that stopped it. */
  get done(): Promise<void> {
    return this.stopped;
  }

  private async readiness(): Promise<{ ready: boolean; detail: string }> {
    if (!this.joined) return { ready: false, detail: 'not yet in the consumer group' };
    try {
      await this.pool.query('SELECT 1');
    } catch (err) {
      return { ready: false, detail: `destination unreachable: ${(err as Error).message}` };
    }
    // Stalled: records waiting on a partition that has not committed for a minute (retries holding it, or stuck).
    const lag = await this.metrics.lagMessages.get();
    const stalled = lag.values.filter((v) => v.value > 0 && Date.now() - (this.progressAt.get(`${v.labels.topic}/${v.labels.partition}`) ?? Date.now()) > 60_000);
    if (stalled.length) return { ready: false, detail: `stalled: ${stalled.map((v) => `${v.labels.topic}/${v.labels.partition}`).join(', ')}` };
    return { ready: true, detail: 'ok' };
  }

  private async eachBatch({ batch, resolveOffset, heartbeat, isRunning, isStale }: EachBatchPayload): Promise<void> {
    const mapping = this.tables.get(batch.topic)!;
    const size = this.config.batch.maxRows;
    const high = BigInt(batch.highWatermark);
    for (let start = 0; start < batch.messages.length; start += size) {
      // A revoked partition is abandoned here, uncommitted: its new owner re-reads it and the guards absorb the overlap.
      if (!isRunning() || isStale() || this.failure) return;
      const slice = batch.messages.slice(start, start + size);
      const records: RawRecord[] = slice.map((m) => ({ key: m.key, value: m.value, origin: { topic: batch.topic, partition: batch.partition, offset: m.offset } }));
      try {
        const outcome = await applyRecords(this.context(mapping), records);
        await sendDeadLetters(this.producer, this.config.dlqTopic, this.config.flow, outcome.deadLetters);
        if (outcome.deadLetters.length) this.metrics.dlqDepth.inc({ flow: this.config.flow, topic: this.config.dlqTopic }, outcome.deadLetters.length);
        const committedAt = Date.now();
        for (const ts of outcome.appliedSourceTsMs) this.metrics.endToEndSeconds.observe({ flow: this.config.flow, topic: batch.topic }, Math.max(0, (committedAt - ts) / 1000));
      } catch (err) {
        void this.fail(err as Error);
        return;
      }
      const last = slice[slice.length - 1]!.offset;
      // Only now is the write durable (committed in PostgreSQL, dead letters acknowledged): the offset may move.
      await this.consumer.commitOffsets([{ topic: batch.topic, partition: batch.partition, offset: (BigInt(last) + 1n).toString() }]);
      resolveOffset(last);
      this.progressAt.set(`${batch.topic}/${batch.partition}`, Date.now());
      const next = batch.messages[start + size];
      const behind = high - (BigInt(last) + 1n);
      this.metrics.partitionLag(batch.topic, batch.partition, Number(behind > 0n ? behind : 0n), next ? Number(next.timestamp) : null);
      await heartbeat();
    }
    await this.maybePurge();
  }

  /** Every ten minutes: tombstones and history past their retention go. */
  private async maybePurge(): Promise<void> {
    if (Date.now() - this.lastPurge < 600_000) return;
    this.lastPurge = Date.now();
    const tombstones = await this.sink.purgeTombstones(this.config.tombstoneRetentionMs).catch(() => 0);
    const history = await this.sink.purgeHistory(this.config.flow, this.config.historyRetentionMs).catch(() => 0);
    // A write's record is kept as long as a tombstone: its echo may come that late after an outage.
    const outbound = (await this.governed?.sink.purgeOutbound(this.config.tombstoneRetentionMs).catch(() => 0)) ?? 0;
    if (tombstones || history || outbound) this.log.info({ tombstones, history, outbound }, 'purged tombstones, history and write records past their retention');
  }

  /** Stops on an error that retrying cannot fix; nothing past the last durable write was committed. */
  private async fail(err: Error): Promise<void> {
    if (this.failure) return;
    this.failure = err;
    this.log.error({ err: err.message, code: (err as { code?: string }).code }, 'flow stopped');
    await this.close();
    this.settle(err);
  }

  /** Drains: the batch in hand finishes (and commits), then everything closes. */
  async stop(): Promise<void> {
    await this.close();
    this.settle();
  }

  private async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.running = false;
    await this.consumer.disconnect().catch(() => undefined);
    await this.producer.disconnect().catch(() => undefined);
    await this.pool.end().catch(() => undefined);
    await this.governed?.sourceDb?.end().catch(() => undefined);
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
    this.server = undefined;
  }
}
