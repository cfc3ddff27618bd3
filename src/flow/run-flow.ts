import { setMaxListeners } from 'node:events';
import type { Server } from 'node:http';
import { Kafka, logLevel, Partitioners, type Admin, type Consumer, type EachBatchPayload, type Producer } from 'kafkajs';
import pino, { type Logger } from 'pino';
import type { FlowConfig } from './config.js';
import type { Row } from '../model/change.js';
import { AvroDecoder, JsonDecoder, type RawRecord, type RecordDecoder } from '../decode/debezium.js';
import { avroSchemaRegistry } from '../decode/avro-registry.js';
import { openSink, openSourceDatabase } from '../sink/kinds.js';
import type { SourceDatabase } from '../sink/source.js';
import type { Sink } from '../sink/sink.js';
import type { TableMapping } from '../model/table.js';
import { FlowMetrics, serveMetrics } from '../observe/metrics.js';
import { applyRecords, type ApplyContext, type ApplyOutcome } from './apply-records.js';
import { ensureDlqTopic, sendDeadLetters } from './dlq.js';
import { prepareGovernance, type GovernedTables } from './governance.js';
import { ensureStateTopic, topicOffsets, waitForLeaders } from '../kafka/topics.js';
import { registerStateSchema, stateEncoderFor, type StateEncoder } from './state-topic.js';
import { FlowStopping, SchemaIncompatible } from '../model/errors.js';
import { backoffDelay, withRetries } from './retry.js';
import { PartitionLanes } from './lanes.js';
import { sampleAssignedLag } from '../observe/lag.js';
import { CatchUpWatch, type CatchUpNews } from '../observe/catch-up.js';
import { checkKafkaCredentials, kafkaOptions } from '../kafka/connection.js';
import { nearMatches } from '../shared/near-match.js';
import { awaitCanaries, sendCanaries, summarizeCanary } from '../observe/canary.js';

/** Partitions written at once, each in its own lane (lanes.ts). */
const LANES = 8;

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

/**
 * Where a flow is in its life: created → starting → running → draining → stopped, or failed from
 * any of them. Draining finishes the batches in hand; a failure while draining still ends failed.
 */
export type FlowState = 'created' | 'starting' | 'running' | 'draining' | 'stopped' | 'failed';

/** Everything a flow holds open: Kafka clients, the destination pool, the metrics endpoint. */
export class FlowRunner {
  readonly metrics: FlowMetrics;
  readonly log: Logger;
  private readonly kafka: Kafka;
  private readonly consumer: Consumer;
  private readonly producer: Producer;
  private readonly sink: Sink;
  private readonly decoder: RecordDecoder;
  private readonly tables: Map<string, TableMapping>;
  private governed?: GovernedTables;
  /** Per source topic with a state topic: its encoder. Offsets of those topics commit in Kafka transactions. */
  private readonly stateEncoders = new Map<string, StateEncoder>();
  /** One transactional producer per source partition, so a partition's new owner fences its old one. */
  private readonly txProducers = new Map<string, Producer>();
  private server?: Server;
  private joined = false;
  private phase: FlowState = 'created';
  /** The one shutdown every caller awaits: stop, a failure, both (settles `done` when it ends). */
  private closed?: Promise<void>;
  /** Aborted once the flow stops: batches waiting between attempts are given up, uncommitted. */
  private readonly stopping = stopSignal();
  /** A batch's unforeseen failure stops the flow, whichever partition it was on. */
  private readonly lanes = new PartitionLanes((err) => void this.fail(err as Error));
  /** The first error that stopped the flow: once set, the flow ends failed, whoever asked it to stop. */
  private failure?: Error;
  private readonly stopped: Promise<void>;
  private settle!: (err?: Error) => void;
  private purgeTimer?: NodeJS.Timeout;
  private canaryTimer?: NodeJS.Timeout;
  private canaryDb?: SourceDatabase;
  /** Where canaries arrive: the destination, on connections of their own. */
  private canaryDest?: Sink;
  /** When each partition last committed, to tell a stalled partition from a quiet one. */
  private readonly progressAt = new Map<string, number>();
  /** The partitions this member owns, by topic (from its last join): the ones whose lag it reports. */
  private assignment = new Map<string, number[]>();
  private lagTimer?: NodeJS.Timeout;
  private lagAdmin?: Admin;
  /** The backlog's progress, told at each lag sample while far behind. */
  private readonly catchUp = new CatchUpWatch();
  private samplingLag = false;
  /** The source database (source.database), read on the lag timer for its replication slots. */
  private slotSource?: SourceDatabase;

  constructor(
    readonly config: FlowConfig,
    log?: Logger,
  ) {
    this.log = log ?? createLogger(config.flow, config.logLevel);
    this.metrics = new FlowMetrics(config.flow);
    this.kafka = new Kafka({
      clientId: `trustsync-${config.flow}`,
      ...kafkaOptions(config.kafka),
      logLevel: logLevel.INFO,
      logCreator: kafkaLogCreator(this.log),
      retry: { retries: 8 },
    });
    this.consumer = this.kafka.consumer({
      groupId: config.group,
      maxWaitTimeInMs: config.batch.maxWaitMs,
      // Room for a full batch per partition (fewer, larger transactions than kafkajs's 1 MB allows); a
      // response stays under glibc's largest mmap threshold (32 MB), or each is mapped and faulted in anew.
      maxBytesPerPartition: 6 * 1024 * 1024,
      maxBytes: 24 * 1024 * 1024,
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
    this.sink = openSink(config.destinationUrl, {
      name: `trustsync:${config.flow}`,
      // A lane holds one connection at a time; two more keep readiness and maintenance from making a lane wait.
      connections: LANES + 2,
      settings: config.destinationSettings,
      requests: this.metrics,
      onConnectionLost: (err) => this.log.warn({ err: err.message }, 'destination connection lost'),
    });
    this.decoder = createDecoder(config);
    this.tables = new Map(config.tables.map((t) => [t.topic, t]));
    this.stopped = new Promise<void>((resolve, reject) => (this.settle = (err) => (err ? reject(err) : resolve())));
    // A failure is reported through `done` and the log; unawaited, it must not also surface as an unhandled rejection.
    this.stopped.catch(() => undefined);
  }

  get state(): FlowState {
    return this.phase;
  }

  /** Once stop or failure begins: start gives up where it is, loops end. */
  private get closing(): boolean {
    return this.closed !== undefined;
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
      signal: this.stopping.signal,
    };
  }

  /**
   * Starts consuming; resolves when the consumer has been asked to run. `done` settles when it stops.
   * A failure here closes what was opened, and the flow ends failed.
   */
  async start(): Promise<void> {
    if (this.phase !== 'created') throw new Error(`flow ${this.config.flow} was started already (it is ${this.phase})`);
    this.phase = 'starting';
    try {
      await this.open();
    } catch (err) {
      await this.fail(err as Error);
      throw err;
    }
  }

  private async open(): Promise<void> {
    const { config, log } = this;
    if (config.metrics) {
      this.server = await serveMetrics(
        this.metrics,
        { live: () => this.phase === 'running', ready: () => this.readiness() },
        config.metrics.port,
        config.metrics.host,
      );
      log.info({ port: config.metrics.port }, 'metrics on /metrics, health on /healthz and /readyz');
    }
    await this.sink.prepare();
    this.governed = await prepareGovernance(config, this.sink, log);
    if (this.governed) this.metrics.reviewOpen.set({ flow: config.flow }, await this.governed.sink.openReviews(this.governed.targets));
    // A password or certificate the brokers refuse is told as the field to fix, before any retry.
    await checkKafkaCredentials(config.kafka);
    const admin = this.kafka.admin();
    await admin.connect();
    try {
      await ensureDlqTopic(admin, config.dlqTopic);
      const dlq = await topicOffsets(admin, config.dlqTopic);
      this.metrics.dlqDepth.set(
        { flow: config.flow, topic: config.dlqTopic },
        dlq.reduce((n, o) => n + Number(BigInt(o.high) - BigInt(o.low)), 0),
      );
      // Canaries start first: the canary table's topic appears with the first canary Debezium captures.
      if (config.canary?.intervalMs) this.startCanaries(config.canary.intervalMs);
      await this.waitForTopics(admin);
      await this.prepareStateTopics(admin);
    } finally {
      await admin.disconnect();
    }
    // Stopped while waiting (SIGTERM before the topics appeared): nothing more to start.
    if (this.closing) return;
    await this.producer.connect();
    await this.consumer.connect();
    this.consumer.on(this.consumer.events.GROUP_JOIN, (e) => {
      this.joined = true;
      this.metrics.groupJoins.inc({ flow: config.flow });
      log.info({ assignment: e.payload.memberAssignment }, 'joined the consumer group');
      const owned = new Map(Object.entries(e.payload.memberAssignment));
      for (const [topic, partitions] of this.assignment) for (const p of partitions) if (!owned.get(topic)?.includes(p)) this.metrics.forgetPartition(topic, p);
      this.assignment = owned;
      void this.sampleLag();
    });
    this.consumer.on(this.consumer.events.CRASH, (e) => {
      if (!e.payload.restart) void this.fail(e.payload.error);
    });
    await this.consumer.subscribe({ topics: [...this.tables.keys()], fromBeginning: config.fromBeginning });
    if (this.closing) return;
    this.phase = 'running';
    await this.consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      // Each partition is its own lane: one held by retries does not stop the others.
      partitionsConsumedConcurrently: LANES,
      eachBatch: (payload) => this.eachBatch(payload),
    });
    this.purgeTimer = setInterval(() => void this.maintain(), 600_000);
    this.purgeTimer.unref();
    this.metrics.countFromZero([...this.tables.keys()]);
    if (config.metrics) {
      this.lagAdmin = this.kafka.admin();
      await this.lagAdmin.connect();
      if (config.sourceDatabaseUrl)
        this.slotSource = openSourceDatabase(config.sourceDatabaseUrl, {
          name: `trustsync:${config.flow}:slots`,
          connections: 1,
          onConnectionLost: () => undefined,
        });
      this.lagTimer = setInterval(() => void this.sampleLag(), config.metrics.lagIntervalMs);
      this.lagTimer.unref();
    }
    log.info({ topics: [...this.tables.keys()], group: config.group, destination: redactUrl(config.destinationUrl) }, 'flow running');
  }

  private retryLogger(topic: string) {
    return (err: Error, attempt: number, delayMs: number) => {
      this.metrics.retries.inc({ flow: this.config.flow, topic, code: (err as { code?: string }).code ?? 'error' });
      this.log.warn({ topic, attempt, delayMs, err: err.message }, 'transient failure, retrying');
    };
  }

  /** One canary per interval: written at the source, awaited at the destination, counted and timed. */
  private startCanaries(intervalMs: number): void {
    const canary = this.config.canary!;
    // Connections of their own: polling for arrival never makes a lane wait for one.
    const options = { name: `trustsync:${this.config.flow}:canary`, connections: 1, onConnectionLost: () => undefined };
    this.canaryDb = openSourceDatabase(this.config.sourceDatabaseUrl!, options);
    this.canaryDest = openSink(this.config.destinationUrl, options);
    const labels = { flow: this.config.flow };
    let busy = false;
    const send = async () => {
      if (busy || this.closing) return;
      busy = true;
      try {
        const sent = await sendCanaries(this.canaryDb!, canary.sourceTable, 1);
        const r = await awaitCanaries(this.canaryDest!, canary.table, sent, Math.max(intervalMs * 5, 30_000));
        for (const l of r.latencies) this.metrics.canaryLatency.observe(labels, l);
        this.metrics.canaries.inc({ ...labels, result: 'intact' }, r.intact);
        this.metrics.canaries.inc({ ...labels, result: 'damaged' }, r.arrived - r.intact);
        this.metrics.canaries.inc({ ...labels, result: 'missing' }, r.missing.length);
        if (r.intact < r.sent) this.log.warn({ canary: summarizeCanary(r) }, 'canary did not arrive intact');
      } catch (err) {
        if (!this.closing) this.log.warn({ err: (err as Error).message }, 'canary failed');
      } finally {
        busy = false;
      }
    };
    this.canaryTimer = setInterval(() => void send(), intervalMs);
  }

  /** Registers each state schema (compatibility checked by the registry) and creates its compacted topic. */
  private async prepareStateTopics(admin: Admin): Promise<void> {
    for (const mapping of this.config.tables) {
      const spec = mapping.state;
      if (!spec) continue;
      const columns = await this.sink.columnsOf(mapping.table);
      const id = await withRetries(this.config.retry, () => registerStateSchema(this.config.registryUrl!, spec), this.retryLogger(spec.topic));
      const encoder = stateEncoderFor(spec, id);
      const missing = columns ? encoder.missingColumns(columns) : [];
      if (missing.length) {
        throw new SchemaIncompatible(
          `${spec.schemaFile} has fields ${missing.join(', ')} that ${mapping.table.schema}.${mapping.table.table} lacks, without defaults`,
          'give those fields a default (e.g. ["null", "string"] with default null) or remove them',
        );
      }
      const { topics } = await admin.fetchTopicMetadata({ topics: [mapping.topic] });
      await ensureStateTopic(admin, spec.topic, topics[0]?.partitions.length ?? 1);
      this.stateEncoders.set(mapping.topic, encoder);
      this.log.info(
        { topic: spec.topic, schemaId: id, table: `${mapping.table.schema}.${mapping.table.table}` },
        'publishing current rows to a compacted state topic',
      );
    }
  }

  /**
   * Publishes the current rows of the slice's keys to the state topic and commits the slice's offset,
   * in one Kafka transaction: after a crash both are redone together (the destination's guards make
   * the rewrite a no-op), so the state topic never disagrees with what was applied. False when
   * this producer is fenced (another member took the partition over, or a zombie's producer fenced
   * this one): the slice's offset is not committed.
   */
  private async commitWithState(
    mapping: TableMapping,
    encoder: StateEncoder,
    partition: number,
    keys: ReadonlyMap<string, Row | null>,
    offset: string,
  ): Promise<boolean> {
    const rows = await withRetries(this.config.retry, () => this.sink.readRows(mapping, keys), this.retryLogger(mapping.topic));
    const messages = [...rows].map(([key, row]) => encoder.message(key, row));
    const id = `${mapping.topic}/${partition}`;
    for (let attempt = 1; ; attempt++) {
      const producer = await this.stateProducer(id, mapping.topic, partition);
      const tx = await producer.transaction();
      try {
        if (messages.length) await tx.send({ topic: encoder.spec.topic, messages });
        await tx.sendOffsets({ consumerGroupId: this.config.group, topics: [{ topic: mapping.topic, partitions: [{ partition, offset }] }] });
        await tx.commit();
        return true;
      } catch (err) {
        await tx.abort().catch(() => undefined);
        const type = (err as { type?: string }).type ?? '';
        const fenced = ['PRODUCER_FENCED', 'INVALID_PRODUCER_EPOCH', 'INVALID_TXN_STATE'].includes(type);
        // A predecessor's transaction (a killed run's) is still being aborted by the coordinator: wait it out.
        const concurrent = type === 'CONCURRENT_TRANSACTIONS' && attempt < this.config.retry.maxAttempts;
        if (!fenced && !concurrent) throw err;
        this.txProducers.delete(id);
        await producer.disconnect().catch(() => undefined);
        if (fenced) {
          this.log.warn(
            { topic: mapping.topic, partition, err: (err as Error).message },
            'state producer fenced: the slice is read again from its first record (by this member if it still owns the partition)',
          );
          return false;
        }
        const delay = backoffDelay(this.config.retry, attempt - 1);
        this.log.warn({ topic: mapping.topic, partition, attempt, delayMs: delay }, 'state transaction waits for an earlier one to end');
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  /** One transactional producer per partition's slice of state: its id fences a predecessor's. */
  private async stateProducer(id: string, topic: string, partition: number): Promise<Producer> {
    const existing = this.txProducers.get(id);
    if (existing) return existing;
    const producer = this.kafka.producer({
      transactionalId: `trustsync.${this.config.flow}.${topic}.${partition}`,
      idempotent: true,
      maxInFlightRequests: 1,
      createPartitioner: Partitioners.DefaultPartitioner,
      allowAutoTopicCreation: false,
    });
    await producer.connect();
    this.txProducers.set(id, producer);
    return producer;
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
        const near = missing.map((t) => [t, nearMatches(t, existing)] as const).filter(([, n]) => n.length);
        this.log.warn(
          { missing, ...(near.length ? { didYouMean: Object.fromEntries(near) } : {}) },
          `waiting for topics to exist (is the source connector running?${near.length ? ' or is a topic misspelt in destination.tables?' : ''})`,
        );
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
      await this.sink.ping();
    } catch (err) {
      return { ready: false, detail: `destination unreachable: ${(err as Error).message}` };
    }
    // Stalled: records waiting on a partition that has not committed for a minute (retries holding it, or stuck).
    const lag = await this.metrics.lagMessages.get();
    const stalled = lag.values.filter(
      (v) => v.value > 0 && Date.now() - (this.progressAt.get(`${v.labels.topic}/${v.labels.partition}`) ?? Date.now()) > 60_000,
    );
    if (stalled.length) return { ready: false, detail: `stalled: ${stalled.map((v) => `${v.labels.topic}/${v.labels.partition}`).join(', ')}` };
    return { ready: true, detail: 'ok' };
  }

  /**
   * The lag gauges of the partitions this member owns, from the broker's log ends and the group's
   * commits: true while the flow is idle or a partition is stuck, not only after a commit.
   */
  private async sampleLag(): Promise<void> {
    if (this.samplingLag || this.closing || !this.lagAdmin) return;
    this.samplingLag = true;
    try {
      let behind = 0;
      for (const p of await sampleAssignedLag(this.lagAdmin, this.config.group, this.assignment)) {
        this.metrics.sampledLag(p.topic, p.partition, Number(p.lag));
        behind += Number(p.lag);
      }
      this.tellCatchUp(this.catchUp.sample(behind, Date.now()));
    } catch (err) {
      // The broker briefly away: the next tick reads it again; the gauges keep their last value meanwhile.
      this.log.debug({ err: (err as Error).message }, 'consumer lag not sampled');
    }
    try {
      if (this.slotSource?.replicationSlots) this.metrics.replicationSlots(await this.slotSource.replicationSlots());
    } catch (err) {
      this.log.debug({ err: (err as Error).message }, 'source replication slots not read');
    } finally {
      this.samplingLag = false;
    }
  }

  /** A backlog's progress as a log record: how far behind, how fast it shrinks, how long until caught up. */
  private tellCatchUp(news: CatchUpNews | undefined): void {
    if (news?.state === 'caught-up') this.log.info({ seconds: Math.round(news.seconds) }, `caught up after ${Math.round(news.seconds)} s`);
    else if (news) {
      const p = news.perSecond;
      const pace =
        p === undefined
          ? 'pace not known yet'
          : p > 0
            ? `shrinking by ${Math.round(p)} records/s, about ${Math.ceil(news.secondsLeft!)} s left`
            : p < 0
              ? `growing by ${Math.round(-p)} records/s`
              : 'not shrinking';
      this.log.info(
        {
          behind: news.behind,
          perSecond: p === undefined ? null : Math.round(p),
          secondsLeft: news.secondsLeft === undefined ? null : Math.ceil(news.secondsLeft),
        },
        `catching up: ${news.behind} records behind, ${pace}`,
      );
    }
  }

  /** Hands the batch to its partition's lane, so that Kafka fetches the next while it is written. */
  private async eachBatch(payload: EachBatchPayload): Promise<void> {
    const { batch } = payload;
    if (this.closing || batch.messages.length === 0) return;
    // Waiting for the partition's batch in hand (a slow destination) keeps the session: kafkajs beats only between fetches.
    const beating = setInterval(() => void payload.heartbeat().catch(() => undefined), 1_000);
    try {
      await this.lanes.handOff(`${batch.topic}/${batch.partition}`, () => this.applyBatch(payload));
    } finally {
      clearInterval(beating);
    }
    // kafkajs may fetch past the batch now; its offset commits only once it is durable (applyBatch).
    payload.resolveOffset(batch.messages[batch.messages.length - 1]!.offset);
  }

  private async applyBatch({ batch, heartbeat, isRunning, isStale }: EachBatchPayload): Promise<void> {
    const mapping = this.tables.get(batch.topic)!;
    const size = this.config.batch.maxRows;
    const high = BigInt(batch.highWatermark);
    for (let start = 0; start < batch.messages.length; start += size) {
      // Abandoned here, uncommitted (the flow stopping or failed, kafkajs's run ended or a seek pending):
      // kafkajs's fetch position is past the batch, but what reads the partition next — a restarted run,
      // a new owner — starts from its last commit, and the guards absorb the overlap.
      if (!isRunning() || isStale() || this.closing) return;
      const slice = batch.messages.slice(start, start + size);
      const records: RawRecord[] = slice.map((m) => ({
        key: m.key,
        value: m.value,
        headers: m.headers,
        origin: { topic: batch.topic, partition: batch.partition, offset: m.offset },
      }));
      let outcome: ApplyOutcome;
      try {
        outcome = await applyRecords(this.context(mapping), records);
        await sendDeadLetters(this.producer, this.config.dlqTopic, this.config.flow, outcome.deadLetters);
        if (outcome.deadLetters.length) this.metrics.dlqDepth.inc({ flow: this.config.flow, topic: this.config.dlqTopic }, outcome.deadLetters.length);
        const committedAt = Date.now();
        for (const ts of outcome.appliedSourceTsMs)
          this.metrics.endToEndSeconds.observe({ flow: this.config.flow, topic: batch.topic }, Math.max(0, (committedAt - ts) / 1000));
      } catch (err) {
        // Given up because the flow stops: uncommitted, read again from its last commit.
        if (err instanceof FlowStopping) return;
        void this.fail(err as Error);
        return;
      }
      const next = (BigInt(slice[slice.length - 1]!.offset) + 1n).toString();
      // Only now is the write durable (committed in PostgreSQL, dead letters acknowledged): the offset may move.
      const encoder = this.stateEncoders.get(batch.topic);
      if (encoder) {
        try {
          if (!(await this.commitWithState(mapping, encoder, batch.partition, outcome.keys, next))) {
            // kafkajs has fetched past this slice: read the partition again from it, or the member
            // that still owns the partition (fenced by a zombie) would commit past unapplied slices.
            // A partition this member no longer owns ignores the seek; its new owner reads from the last commit.
            this.consumer.seek({ topic: batch.topic, partition: batch.partition, offset: slice[0]!.offset });
            return;
          }
        } catch (err) {
          void this.fail(err as Error);
          return;
        }
      } else {
        const committed = await this.consumer.commitOffsets([{ topic: batch.topic, partition: batch.partition, offset: next }]).then(
          () => true,
          (err: Error) => this.commitRefused(batch.topic, batch.partition, err),
        );
        if (!committed) continue;
      }
      this.progressAt.set(`${batch.topic}/${batch.partition}`, Date.now());
      const following = batch.messages[start + size];
      const behind = high - BigInt(next);
      this.metrics.partitionLag(batch.topic, batch.partition, Number(behind > 0n ? behind : 0n), following ? Number(following.timestamp) : null);
      // kafkajs heartbeats between fetches too, and acts on a refusal (rejoins, restarts) itself.
      await heartbeat().catch(() => undefined);
    }
  }

  /**
   * An offset commit refused — the group went on without this member, the broker restarting, the
   * consumer between runs after a crash. The slice's writes are durable, so nothing is lost: whoever
   * reads the partition next starts from its last commit, and the guards absorb the repeats. kafkajs
   * meets the cause in its own heartbeats and fetches, and rejoins or restarts.
   */
  private commitRefused(topic: string, partition: number, err: Error): false {
    this.log.warn({ topic, partition, err: err.message }, 'offset commit refused: the writes are durable and will be read again from the last commit');
    return false;
  }

  /**
   * Every ten minutes, off the consumer's path (a long purge must not hold a partition past its
   * session): tombstones, history and write records past their retention go; long histories are
   * snapshotted. A task that fails is logged and counted, and tried again at the next round.
   */
  async maintain(): Promise<{ tombstones: number; history: number; snapshots: number; outbound: number; failed: string[] }> {
    const failed: string[] = [];
    const task = async (name: string, work: () => Promise<number>): Promise<number> => {
      try {
        return await work();
      } catch (err) {
        failed.push(name);
        this.metrics.maintenanceFailures.inc({ flow: this.config.flow, task: name });
        this.log.warn({ task: name, err: (err as Error).message }, 'maintenance task failed: tried again at the next round');
        return 0;
      }
    };
    const tombstones = await task('purge-tombstones', () => this.sink.purgeTombstones(this.config.tombstoneRetentionMs));
    const history = await task('purge-history', () => this.sink.purgeHistory(this.config.flow, this.config.historyRetentionMs));
    const snapshots = await task('snapshot-histories', () => this.sink.snapshotLongHistories(this.config.flow));
    // A write's record is kept as long as a tombstone: its echo may come that late after an outage.
    const governed = this.governed?.sink;
    const outbound = governed ? await task('purge-outbound', () => governed.purgeOutbound(this.config.tombstoneRetentionMs)) : 0;
    if (tombstones || history || outbound || snapshots)
      this.log.info({ tombstones, history, outbound, snapshots }, 'purged past retention, snapshotted long histories');
    return { tombstones, history, snapshots, outbound, failed };
  }

  /** Stops on an error that retrying cannot fix; nothing past the last durable write was committed. */
  private fail(err: Error): Promise<void> {
    if (!this.failure) {
      this.failure = err;
      this.log.error({ err: err.message, code: (err as { code?: string }).code }, 'flow stopped');
    }
    return this.close();
  }

  /** Drains: the batches in hand finish (and commit), then everything closes. Resolves once closed. */
  stop(): Promise<void> {
    return this.close();
  }

  private close(): Promise<void> {
    if (!this.stopping.signal.aborted) this.stopping.abort(new FlowStopping());
    this.closed ??= this.shutDown().then(
      () => this.finish(),
      (err: Error) => {
        this.failure ??= err;
        this.finish();
      },
    );
    return this.closed;
  }

  /** Settles `done`: failed if anything failed along the way, whoever asked the flow to stop. */
  private finish(): void {
    this.phase = this.failure ? 'failed' : 'stopped';
    this.settle(this.failure);
  }

  private async shutDown(): Promise<void> {
    this.phase = 'draining';
    // The batches in hand finish (and commit) while the consumer is still in the group.
    await this.lanes.drain();
    await this.consumer.disconnect().catch(() => undefined);
    await this.producer.disconnect().catch(() => undefined);
    for (const p of this.txProducers.values()) await p.disconnect().catch(() => undefined);
    this.txProducers.clear();
    clearInterval(this.canaryTimer);
    clearInterval(this.purgeTimer);
    clearInterval(this.lagTimer);
    await this.lagAdmin?.disconnect().catch(() => undefined);
    await this.slotSource?.close();
    await this.canaryDb?.close();
    await this.canaryDest?.close();
    await this.sink.close();
    await this.governed?.sink.close();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
    this.server = undefined;
  }
}

/** Aborted when the flow stops: every wait between attempts listens to it, one per request in flight and partition. */
function stopSignal(): AbortController {
  const controller = new AbortController();
  setMaxListeners(10_000, controller.signal);
  return controller;
}
