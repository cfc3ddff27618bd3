import { Kafka, logLevel } from 'kafkajs';
import type { Logger } from 'pino';
import type { FlowConfig } from './config.js';
import { parseDlqMessage, sendDeadLetters, type DlqEntry } from './dlq.js';
import { readTopicsToEnd } from '../kafka/read-topic.js';
import { applyRecords, type ApplyOutcome } from './apply-records.js';
import { createDecoder } from './run-flow.js';
import { openSink } from '../sink/kinds.js';
import { prepareGovernance, type GovernedTables } from './governance.js';
import { FlowMetrics } from '../observe/metrics.js';

function kafkaFor(config: FlowConfig): Kafka {
  return new Kafka({ clientId: `trustsync-${config.flow}-dlq`, brokers: config.brokers, logLevel: logLevel.NOTHING });
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
  const byRecord = new Map<string, DlqEntry>();
  for (const e of messages.map((m) => parseDlqMessage(m.message))) {
    if (e) byRecord.set(`${e.flow}\u0000${e.origin.topic}/${e.origin.partition}@${e.origin.offset}`, e);
  }
  return [...byRecord.values()];
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
      } else if (outcome.applied) results.push({ entry, outcome: 'applied', detail: 'written to the destination' });
      else if (outcome.stale) results.push({ entry, outcome: 'stale', detail: 'the destination holds a newer change for this key' });
      else if (outcome.duplicate) results.push({ entry, outcome: 'duplicate', detail: 'already applied' });
      else results.push({ entry, outcome: 'ignored', detail: 'a heartbeat or tombstone: nothing to apply' });
    }
  } finally {
    await producer.disconnect();
    await sink.close();
    await governed?.sink.close();
  }
  return results;
}
