import { kafkaOptions } from '../kafka/connection.js';
import { Kafka, logLevel } from 'kafkajs';
import type { Logger } from 'pino';
import type { FlowConfig } from './config.js';
import { parseDlqRecord, sendDeadLetters, sendSettlements, type DlqEntry, type Settlement } from './dlq.js';
import { readTopicsToEnd } from '../kafka/read-topic.js';
import { applyRecords, printableKey, type ApplyOutcome } from './apply-records.js';
import { noteRow } from '../history/history.js';
import type { HistoryRow } from '../model/history-row.js';
import { targetName } from '../model/table.js';
import { createDecoder } from './run-flow.js';
import { openSink } from '../sink/kinds.js';
import { prepareGovernance, type GovernedTables } from './governance.js';
import { FlowMetrics } from '../observe/metrics.js';

function kafkaFor(config: FlowConfig): Kafka {
  return new Kafka({ clientId: `trustsync-${config.flow}-dlq`, ...kafkaOptions(config.kafka), logLevel: logLevel.NOTHING });
}

export async function listDeadLetters(config: FlowConfig): Promise<DlqEntry[]> {
  const kafka = kafkaFor(config);
  const admin = kafka.admin();
  await admin.connect();
  const exists = (await admin.listTopics()).includes(config.dlqTopic);
  await admin.disconnect();
  if (!exists) return [];
  const messages = await readTopicsToEnd(kafka, [config.dlqTopic]);
  // A dead letter is sent before the offsets move past its record, so a record read again (after a
  // crash or a rebalance) is dead-lettered again: it is still one letter, the latest for its record.
  // A settlement (replayed, discarded) takes the letter off the list, until the record fails again.
  const byRecord = new Map<string, DlqEntry>();
  for (const r of messages.map((m) => parseDlqRecord(m.message))) {
    if (!r) continue;
    const flow = r.kind === 'letter' ? r.entry.flow : r.flow;
    const origin = r.kind === 'letter' ? r.entry.origin : r.origin;
    const id = `${flow}\u0000${origin.topic}/${origin.partition}@${origin.offset}`;
    if (r.kind === 'letter') byRecord.set(id, r.entry);
    else byRecord.delete(id);
  }
  return [...byRecord.values()].filter((e) => e.flow === config.flow);
}

/** Which dead letters a command works on; every given criterion must hold. */
export interface DlqFilter {
  /** The error code (e.g. malformed-json, row-rejected). */
  code?: string;
  /** Text the error message contains. */
  reason?: string;
  /** The record's key as text (Debezium's key payload, e.g. 42 or {"id":42}), or part of it. */
  key?: string;
  topic?: string;
  partition?: number;
  /** Origin offsets, inclusive. */
  fromOffset?: bigint;
  toOffset?: bigint;
  /** One dead letter, by its offset in the DLQ topic. */
  dlqOffset?: string;
}

export function matchesDlqFilter(e: DlqEntry, f: DlqFilter): boolean {
  const offset = BigInt(e.origin.offset);
  return (
    (f.code === undefined || e.code === f.code) &&
    (f.reason === undefined || e.message.includes(f.reason)) &&
    (f.key === undefined || (e.key?.toString('utf8') ?? '').includes(f.key)) &&
    (f.topic === undefined || e.origin.topic === f.topic) &&
    (f.partition === undefined || e.origin.partition === f.partition) &&
    (f.fromOffset === undefined || offset >= f.fromOffset) &&
    (f.toOffset === undefined || offset <= f.toOffset) &&
    (f.dlqOffset === undefined || e.dlqOffset === f.dlqOffset)
  );
}

/**
 * Settles dead letters without applying them, as a person decided: each is marked discarded in the
 * DLQ topic (`dlq list` shows it no more) and told in the destination's decision history, with the
 * reason given. Returns the letters discarded.
 */
export async function discardDeadLetters(config: FlowConfig, select: (e: DlqEntry) => boolean, reason: string, dryRun: boolean): Promise<DlqEntry[]> {
  const entries = (await listDeadLetters(config)).filter(select);
  if (dryRun || entries.length === 0) return entries;
  const sink = openSink(config.destinationUrl, { name: `trustsync:${config.flow}:dlq`, connections: 1, settings: config.destinationSettings });
  const decoder = createDecoder(config);
  const producer = kafkaFor(config).producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false });
  try {
    await sink.prepare();
    const rows: HistoryRow[] = [];
    for (const e of entries) {
      const mapping = config.tables.find((t) => t.topic === e.origin.topic);
      // The key as explain finds it, where the record still decodes (a row the destination refused); else its bytes, printed.
      const decoded = await decoder.decode({ key: e.key, value: e.value, headers: e.headers, origin: e.origin }).catch(() => undefined);
      const key = decoded?.kind === 'change' ? decoded.keyText : printableKey(e.key);
      rows.push({
        ...noteRow(mapping ? targetName(mapping.table) : e.origin.topic, key, 'discarded', {
          reason: `discarded from the dead-letter topic (DLQ offset ${e.dlqOffset}; ${e.code}: ${e.message.slice(0, 200)}): ${reason}`,
        }),
        origin: e.origin,
      });
    }
    await sink.recordDecisions(config.flow, rows);
    await producer.connect();
    await sendSettlements(
      producer,
      config.dlqTopic,
      config.flow,
      entries.map((e) => ({ origin: e.origin, how: 'discarded' as const, reason })),
    );
  } finally {
    await producer.disconnect();
    await sink.close();
  }
  return entries;
}

export interface ReplayResult {
  entry: DlqEntry;
  outcome: 'applied' | 'stale' | 'duplicate' | 'failed' | 'ignored' | 'would replay';
  detail: string;
}

/**
 * Re-applies dead letters through the same engine: decoding, ordering guards and batching apply,
 * so replaying an old change never overwrites newer data. A letter that fails again is dead-lettered
 * again, with its original headers, one attempt more and its first failure's time (the DLQ then
 * lists that letter); one that cannot be tried (its topic unmapped, the destination down) is
 * reported and left as it is.
 */
export async function replayDeadLetters(config: FlowConfig, select: (e: DlqEntry) => boolean, dryRun: boolean, log: Logger): Promise<ReplayResult[]> {
  const entries = (await listDeadLetters(config)).filter(select);
  if (dryRun) return entries.map((entry) => ({ entry, outcome: 'would replay', detail: `${entry.code}: ${entry.message}` }));
  const sink = openSink(config.destinationUrl, {
    name: `trustsync:${config.flow}:replay`,
    connections: 2,
    settings: config.destinationSettings,
    onConnectionLost: (err) => log.warn({ err: err.message }, 'destination connection lost'),
  });
  const decoder = createDecoder(config);
  const metrics = new FlowMetrics(config.flow);
  const results: ReplayResult[] = [];
  let governed: GovernedTables | undefined;
  const producer = kafkaFor(config).producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false });
  await producer.connect();
  try {
    await sink.prepare();
    governed = await prepareGovernance(config, sink, log);
    for (const entry of entries) {
      const mapping = config.tables.find((t) => t.topic === entry.origin.topic);
      if (!mapping) {
        results.push({ entry, outcome: 'failed', detail: `topic ${entry.origin.topic} is not mapped in this flow` });
        continue;
      }
      let outcome: ApplyOutcome;
      try {
        outcome = await applyRecords(
          {
            flow: config.flow,
            mapping,
            decoder,
            sink,
            retry: config.retry,
            truncate: config.truncate,
            metrics,
            log,
            governed: governed?.byTopic.has(mapping.topic) ? { tables: governed, governance: governed.byTopic.get(mapping.topic)! } : undefined,
          },
          [
            {
              key: entry.key,
              value: entry.value,
              headers: entry.headers,
              origin: entry.origin,
              deadLettered: { attempts: entry.attempts, firstFailure: entry.firstFailure },
            },
          ],
        );
      } catch (err) {
        results.push({ entry, outcome: 'failed', detail: (err as Error).message });
        continue;
      }
      const letter = outcome.deadLetters[0];
      if (letter) {
        await sendDeadLetters(producer, config.dlqTopic, config.flow, outcome.deadLetters);
        results.push({
          entry,
          outcome: 'failed',
          detail: `${letter.code}: ${letter.message} (failed ${letter.attempts} times since ${letter.firstFailure.toISOString()})`,
        });
        continue;
      }
      const settled: { how: Exclude<Settlement, 'discarded'>; detail: string } = outcome.applied
        ? { how: 'applied', detail: 'written to the destination' }
        : outcome.stale
          ? { how: 'stale', detail: 'the destination holds a newer change for this key' }
          : outcome.duplicate
            ? { how: 'duplicate', detail: 'already applied' }
            : { how: 'ignored', detail: 'a heartbeat or tombstone: nothing to apply' };
      // Settled: the letter leaves the list.
      await sendSettlements(producer, config.dlqTopic, config.flow, [{ origin: entry.origin, how: settled.how, reason: `replayed: ${settled.detail}` }]);
      results.push({ entry, outcome: settled.how, detail: settled.detail });
    }
  } finally {
    await producer.disconnect();
    await sink.close();
    await governed?.sink.close();
  }
  return results;
}
