import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { RequestAttempt, RequestObserver } from '../sink/sink.js';
import type { ReplicationSlotState } from '../sink/source.js';
import { ConfigError } from '../model/errors.js';

/** What a flow counts: every decision, retry and dead letter (nothing silent). */
/** The decisions (and reasons) every flow meets, counted from zero at start. */
const USUAL_DECISIONS: readonly [string, string][] = [
  ['received', ''],
  ['applied', 'r'],
  ['applied', 'c'],
  ['applied', 'u'],
  ['applied', 'd'],
  ['skipped', 'duplicate'],
  ['skipped', 'stale'],
  ['skipped', 'superseded'],
];

export class FlowMetrics implements RequestObserver {
  readonly registry = new Registry();
  readonly events: Counter<'flow' | 'topic' | 'decision' | 'reason'>;
  readonly retries: Counter<'flow' | 'topic' | 'code'>;
  readonly waitingForDestination: Gauge<'flow' | 'topic'>;
  readonly deadLetters: Counter<'flow' | 'topic' | 'code'>;
  readonly batchSize: Histogram<'flow' | 'topic'>;
  readonly applySeconds: Histogram<'flow' | 'topic'>;
  readonly endToEndSeconds: Histogram<'flow' | 'topic'>;
  readonly lagMessages: Gauge<'flow' | 'topic' | 'partition'>;
  readonly lagSeconds: Gauge<'flow' | 'topic' | 'partition'>;
  readonly dlqDepth: Gauge<'flow' | 'topic'>;
  readonly fieldDecisions: Counter<'flow' | 'entity' | 'field' | 'outcome' | 'reason'>;
  readonly reviewOpen: Gauge<'flow'>;
  readonly canaryLatency: Histogram<'flow'>;
  readonly canaries: Counter<'flow' | 'result'>;
  readonly maintenanceFailures: Counter<'flow' | 'task'>;
  readonly slotActive: Gauge<'flow' | 'slot'>;
  readonly slotRetainedWal: Gauge<'flow' | 'slot'>;
  readonly slotFlushLag: Gauge<'flow' | 'slot'>;
  readonly groupJoins: Counter<'flow'>;
  readonly requests: Counter<'flow' | 'method' | 'code'>;
  readonly requestSeconds: Histogram<'flow' | 'method'>;
  readonly requestRetries: Counter<'flow'>;
  readonly throttles: Counter<'flow'>;
  readonly paceWaitSeconds: Counter<'flow'>;
  readonly requestsInFlight: Gauge<'flow'>;
  readonly pace: Gauge<'flow'>;
  /** Per partition behind: the timestamp of its oldest unapplied record, or when it was first seen behind. */
  private readonly behindSince = new Map<string, number>();
  /** Counts not yet in `events`, by topic, decision and reason (see count). */
  private readonly pendingCounts = new Map<string, Map<string, Map<string, number>>>();

  constructor(readonly flow: string) {
    // Node's process metrics under their standard names, as stock dashboards expect them.
    collectDefaultMetrics({ register: this.registry });
    this.events = new Counter({
      name: 'trustsync_events_total',
      help: 'Records handled, by decision (received, applied, skipped, dead_lettered, ignored) and reason',
      labelNames: ['flow', 'topic', 'decision', 'reason'],
      registers: [this.registry],
      collect: () => this.handOverCounts(),
    });
    this.groupJoins = new Counter({
      name: 'trustsync_consumer_group_joins_total',
      help: 'Times this process joined its consumer group: the first, then one per rebalance or rejoin after its session expired',
      labelNames: ['flow'],
      registers: [this.registry],
    });
    this.retries = new Counter({
      name: 'trustsync_retries_total',
      help: 'Retried attempts after a transient failure',
      labelNames: ['flow', 'topic', 'code'],
      registers: [this.registry],
    });
    this.waitingForDestination = new Gauge({
      name: 'trustsync_partitions_waiting_for_destination',
      help: 'Partitions holding their batch until the destination answers again, past the retry budget (backpressure: nothing is dead-lettered for it)',
      labelNames: ['flow', 'topic'],
      registers: [this.registry],
    });
    this.deadLetters = new Counter({
      name: 'trustsync_dead_letters_total',
      help: 'Records sent to the dead-letter topic',
      labelNames: ['flow', 'topic', 'code'],
      registers: [this.registry],
    });
    this.batchSize = new Histogram({
      name: 'trustsync_batch_rows',
      help: 'Rows per destination write (after collapsing per key)',
      labelNames: ['flow', 'topic'],
      buckets: [1, 10, 50, 100, 250, 500, 1000, 2500, 5000],
      registers: [this.registry],
    });
    this.applySeconds = new Histogram({
      name: 'trustsync_apply_seconds',
      help: 'Time to write one batch to the destination, retries included',
      labelNames: ['flow', 'topic'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [this.registry],
    });
    this.endToEndSeconds = new Histogram({
      name: 'trustsync_end_to_end_seconds',
      help: 'From the source commit (Debezium source.ts_ms) to the destination commit, per applied change',
      labelNames: ['flow', 'topic'],
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers: [this.registry],
    });
    this.lagMessages = new Gauge({
      name: 'trustsync_consumer_lag_messages',
      help: 'Records between the committed offset and the log end',
      labelNames: ['flow', 'topic', 'partition'],
      registers: [this.registry],
    });
    this.lagSeconds = new Gauge({
      name: 'trustsync_consumer_lag_seconds',
      help: 'Age of the oldest record not yet applied (0 when caught up)',
      labelNames: ['flow', 'topic', 'partition'],
      registers: [this.registry],
    });
    this.dlqDepth = new Gauge({
      name: 'trustsync_dlq_depth',
      help: 'Records in the dead-letter topic',
      labelNames: ['flow', 'topic'],
      registers: [this.registry],
    });
    this.fieldDecisions = new Counter({
      name: 'trustsync_field_decisions_total',
      help: 'Field-level decisions under policy: applied, rejected (authority, validation), conflict (by strategy), review',
      labelNames: ['flow', 'entity', 'field', 'outcome', 'reason'],
      registers: [this.registry],
    });
    this.canaryLatency = new Histogram({
      name: 'trustsync_canary_latency_seconds',
      help: 'From a canary record committed at the source to its arrival at the destination',
      labelNames: ['flow'],
      buckets: [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers: [this.registry],
    });
    this.canaries = new Counter({
      name: 'trustsync_canaries_total',
      help: 'Canary records sent, by result: intact, damaged (a field differs), missing (not arrived in time)',
      labelNames: ['flow', 'result'],
      registers: [this.registry],
    });
    this.maintenanceFailures = new Counter({
      name: 'trustsync_maintenance_failures_total',
      help: 'Background upkeep that failed (purging tombstones, history and write records past retention; snapshotting long histories); tried again next round',
      labelNames: ['flow', 'task'],
      registers: [this.registry],
    });
    this.slotActive = new Gauge({
      name: 'trustsync_source_slot_active',
      help: "1 while a connector streams from the source's logical replication slot (source.database), 0 when none does",
      labelNames: ['flow', 'slot'],
      registers: [this.registry],
    });
    this.slotRetainedWal = new Gauge({
      name: 'trustsync_source_slot_retained_wal_bytes',
      help: 'WAL the source keeps for the slot: grows without bound while its capture is stopped',
      labelNames: ['flow', 'slot'],
      registers: [this.registry],
    });
    this.slotFlushLag = new Gauge({
      name: 'trustsync_source_slot_flush_lag_bytes',
      help: 'WAL written at the source since the capture last confirmed: how far behind the source the capture is',
      labelNames: ['flow', 'slot'],
      registers: [this.registry],
    });
    this.requests = new Counter({
      name: 'trustsync_destination_requests_total',
      help: 'Requests to an API destination (HTTP), by method and answer status (code "none": no answer — timeout, refused or reset)',
      labelNames: ['flow', 'method', 'code'],
      registers: [this.registry],
    });
    this.requestSeconds = new Histogram({
      name: 'trustsync_destination_request_seconds',
      help: 'Time from sending a request to an API destination to its answer (or giving up on it)',
      labelNames: ['flow', 'method'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [this.registry],
    });
    this.requestRetries = new Counter({
      name: 'trustsync_destination_request_retries_total',
      help: 'Requests sent again (same idempotency key) after a transient answer: 408, 425, 429, 5xx or none',
      labelNames: ['flow'],
      registers: [this.registry],
    });
    this.throttles = new Counter({
      name: 'trustsync_destination_throttled_total',
      help: 'Answers asking the whole destination to slow down (429, 503): it pauses for Retry-After and halves its pace',
      labelNames: ['flow'],
      registers: [this.registry],
    });
    this.paceWaitSeconds = new Counter({
      name: 'trustsync_destination_pace_wait_seconds_total',
      help: "Time requests waited for the destination's pace (its rate limit, or a pause the API asked for) before being sent",
      labelNames: ['flow'],
      registers: [this.registry],
    });
    this.requestsInFlight = new Gauge({
      name: 'trustsync_destination_requests_in_flight',
      help: 'Requests to an API destination sent and not yet answered (at most destination.http.concurrency)',
      labelNames: ['flow'],
      registers: [this.registry],
    });
    this.pace = new Gauge({
      name: 'trustsync_destination_pace_requests_per_second',
      help: 'The pace an API destination is sent at now: destination.http.rateLimit, halved after each throttle and climbing back per success; absent with no limit in force',
      labelNames: ['flow'],
      registers: [this.registry],
    });
    this.reviewOpen = new Gauge({
      name: 'trustsync_review_queue_open',
      help: "Review items waiting for a person in this flow's destination",
      labelNames: ['flow'],
      registers: [this.registry],
    });
  }

  /** One request attempt to an API destination. */
  attempted(a: RequestAttempt): void {
    const flow = this.flow;
    this.requests.inc({ flow, method: a.method, code: a.status === 0 ? 'none' : String(a.status) });
    this.requestSeconds.observe({ flow, method: a.method }, a.seconds);
    if (a.attempt > 1) this.requestRetries.inc({ flow });
    if (a.throttled) this.throttles.inc({ flow });
    if (a.waitedMs > 0) this.paceWaitSeconds.inc({ flow }, a.waitedMs / 1000);
  }

  load(inFlight: number, pace: number): void {
    this.requestsInFlight.set({ flow: this.flow }, inFlight);
    if (Number.isFinite(pace)) this.pace.set({ flow: this.flow }, pace);
    else this.pace.remove({ flow: this.flow });
  }

  /**
   * Where a partition stands after a commit: records behind the log end, and the timestamp of the
   * oldest of them when the batch in hand holds it.
   */
  partitionLag(topic: string, partition: number, messages: number, oldestUnappliedTs: number | null): void {
    const id = `${topic}/${partition}`;
    if (messages === 0) this.behindSince.delete(id);
    else if (oldestUnappliedTs !== null) this.behindSince.set(id, oldestUnappliedTs);
    this.setLag(topic, partition, messages);
  }

  /**
   * Where a partition stands as the broker sees it (log end against the group's commit), read on a
   * timer: a partition that commits nothing — idle, or stuck — still has true gauges. Behind with no
   * record's time known, the age counts from when it was first seen behind: at least that old.
   */
  sampledLag(topic: string, partition: number, messages: number): void {
    const id = `${topic}/${partition}`;
    if (messages === 0) this.behindSince.delete(id);
    else if (!this.behindSince.has(id)) this.behindSince.set(id, Date.now());
    this.setLag(topic, partition, messages);
  }

  /** A partition this member no longer owns: its new owner reports it. */
  forgetPartition(topic: string, partition: number): void {
    const labels = { flow: this.flow, topic, partition: String(partition) };
    this.behindSince.delete(`${topic}/${partition}`);
    this.lagMessages.remove(labels);
    this.lagSeconds.remove(labels);
  }

  private setLag(topic: string, partition: number, messages: number): void {
    const labels = { flow: this.flow, topic, partition: String(partition) };
    const since = this.behindSince.get(`${topic}/${partition}`);
    this.lagMessages.set(labels, messages);
    this.lagSeconds.set(labels, messages === 0 || since === undefined ? 0 : Math.max(0, (Date.now() - since) / 1000));
  }

  /** The source's replication slots as last read; a slot that is gone drops out. */
  replicationSlots(slots: readonly ReplicationSlotState[]): void {
    for (const g of [this.slotActive, this.slotRetainedWal, this.slotFlushLag]) g.reset();
    for (const s of slots) {
      const labels = { flow: this.flow, slot: s.slot };
      this.slotActive.set(labels, s.active ? 1 : 0);
      this.slotRetainedWal.set(labels, s.retainedWalBytes);
      this.slotFlushLag.set(labels, s.flushLagBytes);
    }
  }

  /** Every topic's usual decisions at zero from the start: rates and alerts have a series before the first batch. */
  countFromZero(topics: readonly string[]): void {
    for (const topic of topics) for (const [decision, reason] of USUAL_DECISIONS) this.events.inc({ flow: this.flow, topic, decision, reason }, 0);
  }

  /**
   * Counts records under a decision. Most are counted one change at a time, and prom-client hashes
   * and validates the labels on every update (a visible share of a catch-up's CPU): counts add up here, by
   * topic, decision and reason, and reach `events` whenever it is read (scrape, summary).
   */
  count(topic: string, decision: string, reason = '', n = 1): void {
    if (n <= 0) return;
    let byDecision = this.pendingCounts.get(topic);
    if (!byDecision) this.pendingCounts.set(topic, (byDecision = new Map()));
    let byReason = byDecision.get(decision);
    if (!byReason) byDecision.set(decision, (byReason = new Map()));
    byReason.set(reason, (byReason.get(reason) ?? 0) + n);
  }

  private handOverCounts(): void {
    for (const [topic, byDecision] of this.pendingCounts) {
      for (const [decision, byReason] of byDecision) {
        for (const [reason, n] of byReason) this.events.inc({ flow: this.flow, topic, decision, reason }, n);
      }
    }
    this.pendingCounts.clear();
  }

  /** Current value of one counter series, for summaries. */
  async total(decision: string, reason?: string): Promise<number> {
    const metric = await this.events.get();
    return metric.values.filter((v) => v.labels.decision === decision && (reason === undefined || v.labels.reason === reason)).reduce((n, v) => n + v.value, 0);
  }
}

export interface HealthChecks {
  live(): boolean;
  ready(): Promise<{ ready: boolean; detail: string }>;
}

/** /metrics (Prometheus), /healthz (alive), /readyz (ready to do its work). */
export async function serveMetrics(metrics: FlowMetrics, health: HealthChecks, port: number, host: string): Promise<Server> {
  const server = createServer(async (req, res) => {
    try {
      if (req.url === '/metrics') {
        res.writeHead(200, { 'content-type': metrics.registry.contentType });
        res.end(await metrics.registry.metrics());
      } else if (req.url === '/healthz') {
        const live = health.live();
        res.writeHead(live ? 200 : 503, { 'content-type': 'text/plain' });
        res.end(live ? 'ok\n' : 'not running\n');
      } else if (req.url === '/readyz') {
        const r = await health.ready();
        res.writeHead(r.ready ? 200 : 503, { 'content-type': 'text/plain' });
        res.end(`${r.detail}\n`);
      } else {
        res.writeHead(404).end();
      }
    } catch (err) {
      res.writeHead(500).end(String(err));
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        err.code === 'EADDRINUSE' || err.code === 'EACCES'
          ? new ConfigError(
              'metrics-port',
              `metrics.port ${port}: ${host}:${port} cannot be served (${err.code === 'EADDRINUSE' ? 'another process listens there' : 'not allowed'})`,
              'choose another metrics.port in the flow file, or stop what listens there.',
            )
          : err,
      ),
    );
    server.listen(port, host, resolve);
  });
  return server;
}
