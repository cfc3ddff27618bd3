import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { ChangeEvent, Row } from '../model/change.js';
import { TruncateStopped, TrustsyncError, UndecodableRecord } from '../model/errors.js';
import type { RawRecord, RecordDecoder } from '../decode/debezium.js';
import { collapseByKey, everyChangeInOrder } from '../order/plan.js';
import { formatPosition, positionRank } from '../order/position.js';
import type { Sink } from '../sink/sink.js';
import { targetName, type TableMapping } from '../model/table.js';
import { eventRow, noteRow, truncateRow } from '../history/history.js';
import type { HistoryRow } from '../model/history-row.js';
import type { FlowMetrics } from '../observe/metrics.js';
import { withRetries, type RetryPolicy } from './retry.js';
import type { DeadLetter } from './dlq.js';
import type { EchoRecord, Governance, GovernedDecision } from '../sink/governance.js';
import type { GovernedTables } from './governance.js';

export interface ApplyContext {
  flow: string;
  mapping: TableMapping;
  decoder: RecordDecoder;
  sink: Sink;
  retry: RetryPolicy;
  truncate: 'stop' | 'skip' | 'apply';
  metrics: FlowMetrics;
  log: Logger;
  /** Set when the table is under policy: changes are decided field by field instead of collapsed. */
  governed?: { tables: GovernedTables; governance: Governance };
  /** Aborted when the flow stops: a batch waiting between attempts is given up, uncommitted. */
  signal?: AbortSignal;
}

export interface ApplyOutcome {
  applied: number;
  /** Older than a newer change of the key in the same batch. */
  superseded: number;
  stale: number;
  duplicate: number;
  /** TOASTed columns a newer row left unchanged, given their value by an older change (one per change). */
  filled: number;
  ignored: number;
  /** trustsync's own writes captured back from the source, not sent on. */
  echoes: number;
  /** With a state topic: every key a change of this slice was about (applied or not), by key text; their state is re-published (null: a key a TRUNCATE removed). */
  keys: Map<string, Row | null>;
  deadLetters: DeadLetter[];
  /** Source commit times of the applied changes, for end-to-end latency. */
  appliedSourceTsMs: number[];
}

/** A record's dead letter: its key, value and headers as they came, and a failure more than it had. */
function deadLetter(record: RawRecord, err: TrustsyncError | Error): DeadLetter {
  return {
    key: record.key,
    value: record.value,
    headers: record.headers ?? {},
    origin: record.origin,
    code: err instanceof TrustsyncError ? err.code : 'error',
    message: err.message,
    attempts: (record.deadLettered?.attempts ?? 0) + 1,
    firstFailure: record.deadLettered?.firstFailure ?? new Date(),
  };
}

/**
 * The engine for one slice of one partition: decode → order → guarded batched write. Returns what
 * it decided; the dead letters it returns must be made durable before the slice's offsets are committed.
 * Transient failures (registry, destination) are retried here, holding this partition while others flow.
 */
export async function applyRecords(ctx: ApplyContext, records: readonly RawRecord[]): Promise<ApplyOutcome> {
  const { mapping, metrics, log } = ctx;
  const topic = mapping.topic;
  const outcome: ApplyOutcome = {
    applied: 0,
    superseded: 0,
    stale: 0,
    duplicate: 0,
    filled: 0,
    ignored: 0,
    echoes: 0,
    keys: new Map(),
    deadLetters: [],
    appliedSourceTsMs: [],
  };
  const rawByOffset = new Map(records.map((r) => [`${r.origin.partition}/${r.origin.offset}`, r]));
  let pending: ChangeEvent[] = [];
  metrics.count(topic, 'received', '', records.length);

  const target = targetName(mapping.table);
  /** Retries since the last write, told in that write's history. */
  let retried: HistoryRow[] = [];
  /** Since when this slice waits for a destination that does not answer, past the retry budget. */
  let waitingSince: number | undefined;
  const onRetry = (err: Error, attempt: number, delayMs: number, waiting: boolean) => {
    const code = (err as TrustsyncError).code ?? 'error';
    metrics.retries.inc({ flow: ctx.flow, topic, code });
    if (waiting && waitingSince !== undefined) {
      // Told once when the wait begins: an outage of hours is one history row and one warning, not thousands.
      log.debug({ topic, attempt, delayMs, err: err.message }, 'destination still unavailable, waiting');
      return;
    }
    const partition = records[0]?.origin.partition;
    if (waiting) {
      waitingSince = Date.now();
      metrics.waitingForDestination.inc({ flow: ctx.flow, topic });
      retried.push({
        ...batchRow(target, 'retried'),
        reason: `attempt ${attempt} failed (${code}): ${err.message}; past the retry budget the partition waits for the destination, nothing is dead-lettered for it`,
      });
      log.warn(
        { topic, partition, attempt, err: err.message },
        'destination unavailable past the retry budget: the partition waits for it (backpressure), nothing is dead-lettered for it',
      );
      return;
    }
    retried.push({ ...batchRow(target, 'retried'), reason: `attempt ${attempt} failed (${code}): ${err.message}; next in ${delayMs} ms` });
    log.warn({ topic, partition, attempt, delayMs, err: err.message }, 'transient failure, retrying');
  };
  /** `work` with the flow's retries; a wait past the budget ends when the destination answers or the flow stops. */
  const retrying = <T>(work: () => Promise<T>): Promise<T> =>
    withRetries(ctx.retry, work, onRetry, { signal: ctx.signal }).finally(() => {
      if (waitingSince === undefined) return;
      metrics.waitingForDestination.dec({ flow: ctx.flow, topic });
      log.info({ topic, waitedSeconds: Math.round((Date.now() - waitingSince) / 1000) }, 'the wait for the destination ended');
      waitingSince = undefined;
    });

  const rejectRow = (d: { event: ChangeEvent; error: TrustsyncError }) => {
    const e = d.event;
    const raw = rawByOffset.get(`${e.origin.partition}/${e.origin.offset}`)!;
    outcome.deadLetters.push(deadLetter(raw, d.error));
    metrics.count(topic, 'dead_lettered', d.error.code);
    metrics.deadLetters.inc({ flow: ctx.flow, topic, code: d.error.code });
    log.warn(
      { topic, partition: e.origin.partition, offset: e.origin.offset, key: e.keyText, err: d.error.message },
      `row rejected by ${targetName(mapping.table)}: dead-lettered`,
    );
  };
  const skip = (d: { event: ChangeEvent; reason: 'stale' | 'duplicate'; storedPosition: string }) => {
    outcome[d.reason]++;
    metrics.count(topic, 'skipped', d.reason);
    log.debug(
      {
        topic,
        partition: d.event.origin.partition,
        offset: d.event.origin.offset,
        key: d.event.keyText,
        position: positionRank(d.event.position).toString(),
        stored: d.storedPosition,
      },
      `skipped: ${d.reason}`,
    );
  };
  const filled = (d: { event: ChangeEvent; columns: string[] }) => {
    outcome.filled++;
    metrics.count(topic, 'filled', 'toast');
    log.debug(
      { topic, partition: d.event.origin.partition, offset: d.event.origin.offset, key: d.event.keyText, columns: d.columns },
      'unchanged TOAST columns filled',
    );
  };
  const applied = (e: ChangeEvent) => {
    outcome.applied++;
    if (e.sourceTsMs !== null) outcome.appliedSourceTsMs.push(e.sourceTsMs);
    metrics.count(topic, 'applied', e.op);
  };

  /** Under policy, every change is weighed in source order; none is collapsed away unheard. */
  const flushGoverned = async (events: ChangeEvent[], governed: NonNullable<ApplyContext['governed']>) => {
    const { tables, governance } = governed;
    const started = process.hrtime.bigint();
    const batchId = randomUUID();
    const decisions = await retrying(async () => {
      const echoes = new Map<string, EchoRecord>();
      for (const entity of new Set(events.map((e) => e.entity)))
        for (const [k, v] of await tables.sink.findEchoes(
          entity,
          events.filter((e) => e.entity === entity),
        ))
          echoes.set(k, v);
      return tables.sink.applyGoverned(mapping, events, governance, echoes, { flow: ctx.flow, extra: retried, batchId });
    });
    retried = [];
    metrics.applySeconds.observe({ flow: ctx.flow, topic }, Number(process.hrtime.bigint() - started) / 1e9);
    metrics.batchSize.observe({ flow: ctx.flow, topic }, events.length);
    for (const d of decisions) countGoverned(d, governance.policy.entity);
    if (decisions.some((d) => d.decision === 'resolved' && d.resolution.fields.some((f) => f.outcome === 'review'))) {
      metrics.reviewOpen.set({ flow: ctx.flow }, await tables.sink.openReviews(tables.targets));
    }
  };
  const countGoverned = (d: GovernedDecision, entity: string) => {
    switch (d.decision) {
      case 'echo':
        outcome.echoes++;
        metrics.count(topic, 'skipped', 'echo');
        return;
      case 'skipped':
        return skip(d);
      case 'filled':
        return filled(d);
      case 'rejected':
        return rejectRow(d);
      case 'resolved':
        if (d.resolution.action === 'none') metrics.count(topic, 'skipped', 'unchanged');
        else applied(d.event);
        for (const f of d.resolution.fields) {
          const reason = f.outcome === 'rejected' ? f.reason : f.outcome === 'conflict' ? f.strategy : '';
          metrics.fieldDecisions.inc({ flow: ctx.flow, entity, field: f.field, outcome: f.outcome, reason });
          if (f.outcome !== 'applied')
            log.info(
              { topic, key: d.event.keyText, field: f.field, outcome: f.outcome, detail: 'detail' in f ? f.detail : undefined },
              `${f.field}: ${f.outcome}`,
            );
        }
    }
  };

  const flush = async () => {
    if (pending.length === 0) return;
    if (ctx.governed) {
      const events = pending;
      pending = [];
      return flushGoverned(events, ctx.governed);
    }
    const plan = mapping.deliver === 'every' ? everyChangeInOrder(pending) : collapseByKey(pending);
    pending = [];
    const started = process.hrtime.bigint();
    const superseded = plan.superseded.map((x) =>
      eventRow(
        target,
        x.event,
        x.reason === 'duplicate' ? 'skipped-duplicate' : 'superseded',
        x.reason === 'duplicate'
          ? 'the same change is in this batch'
          : `a newer change of the key in this batch (offset ${x.by.origin.offset}) is written instead`,
      ),
    );
    // One identity for every attempt: an attempt whose COMMIT landed unacknowledged is not told twice.
    const batchId = randomUUID();
    const decisions = await retrying(() =>
      ctx.sink.applyBatch(
        mapping,
        plan.latest,
        { flow: ctx.flow, extra: [...superseded, ...retried], batchId, signal: ctx.signal },
        plan.superseded.map((s) => s.event),
      ),
    );
    retried = [];
    // Counted once their history is committed with the batch: a batch that never commits counts nothing.
    for (const s of plan.superseded) {
      outcome[s.reason]++;
      metrics.count(topic, 'skipped', s.reason);
      log.debug(
        { topic, partition: s.event.origin.partition, offset: s.event.origin.offset, key: s.event.keyText, position: formatPosition(s.event.position) },
        `skipped: ${s.reason} (a newer or the same change of the key is in this batch)`,
      );
    }
    metrics.applySeconds.observe({ flow: ctx.flow, topic }, Number(process.hrtime.bigint() - started) / 1e9);
    metrics.batchSize.observe({ flow: ctx.flow, topic }, plan.latest.length);
    for (const d of decisions) {
      if (d.decision === 'applied') applied(d.event);
      else if (d.decision === 'skipped') skip(d);
      else if (d.decision === 'filled') filled(d);
      else rejectRow(d);
    }
  };

  /** Records that never became change events: their history rows, and their codes to count once those are on record. */
  const undecodable: { row: HistoryRow; code: string }[] = [];
  for (const record of records) {
    let decoded;
    try {
      decoded = await retrying(() => ctx.decoder.decode(record));
    } catch (err) {
      if (!(err instanceof UndecodableRecord)) throw err;
      outcome.deadLetters.push(deadLetter(record, err));
      undecodable.push({
        row: { ...batchRow(target, 'dead-lettered'), key: printableKey(record.key), reason: `${err.code}: ${err.message}`, origin: record.origin },
        code: err.code,
      });
      log.warn(
        { topic, partition: record.origin.partition, offset: record.origin.offset, err: err.message },
        `undecodable record (${err.code}): dead-lettered`,
      );
      continue;
    }
    switch (decoded.kind) {
      case 'change':
        pending.push(decoded);
        if (mapping.state) outcome.keys.set(decoded.keyText, decoded.key);
        break;
      case 'heartbeat':
      case 'tombstone':
        // A Kafka tombstone only follows the delete event that already carried the delete and its position.
        outcome.ignored++;
        metrics.count(topic, 'ignored', decoded.kind);
        break;
      case 'truncate': {
        await flush();
        const at = { topic, partition: record.origin.partition, offset: record.origin.offset };
        if (ctx.truncate === 'stop') {
          throw new TruncateStopped(
            `TRUNCATE of ${decoded.entity} at ${topic}/${at.partition}@${at.offset}: the flow stops rather than wipe ${targetName(mapping.table)}.`,
          );
        }
        if (ctx.truncate === 'apply') {
          const audit = { flow: ctx.flow, batchId: randomUUID() };
          const done = await retrying(() => ctx.sink.applyTruncate(mapping, decoded, mapping.state !== undefined, audit));
          // With a state topic, every row the truncate removed becomes a tombstone there too.
          for (const [k, key] of done.removed) outcome.keys.set(k, key);
          if (done.decision === 'truncated') {
            metrics.count(topic, 'applied', 'truncate');
            log.warn(at, `TRUNCATE of ${decoded.entity}: applied by policy`);
          } else {
            metrics.count(topic, 'skipped', done.reason);
            log.info({ ...at, storedPosition: done.storedPosition }, `TRUNCATE of ${decoded.entity}: skipped (${done.reason})`);
          }
        } else {
          await retrying(() => ctx.sink.recordDecisions(ctx.flow, [truncateRow(target, decoded, 'ignored', 'TRUNCATE, truncate policy skip')]));
          metrics.count(topic, 'skipped', 'truncate');
          log.warn(at, `TRUNCATE of ${decoded.entity}: skipped by policy`);
        }
        break;
      }
    }
  }
  await flush();
  // Records that never became change events are on record too, before their offsets are committed.
  await retrying(() =>
    ctx.sink.recordDecisions(
      ctx.flow,
      undecodable.map((u) => u.row),
    ),
  );
  // Counted once on record, like every other decision.
  for (const { code } of undecodable) {
    metrics.count(topic, 'dead_lettered', code);
    metrics.deadLetters.inc({ flow: ctx.flow, topic, code });
  }
  return outcome;
}

/** An undecoded key as text for the history: as is when it is readable text, else its hex. */
export function printableKey(key: Buffer | null): string {
  if (key === null) return '(no key)';
  const text = key.toString('utf8');
  return /^[^\u0000-\u001f\ufffd]*$/.test(text) ? text.slice(0, 200) : `0x${key.subarray(0, 100).toString('hex')}`;
}

/** A history row about the batch rather than one change. */
function batchRow(target: string, decision: HistoryRow['decision']): HistoryRow {
  return noteRow(target, '(batch)', decision);
}
