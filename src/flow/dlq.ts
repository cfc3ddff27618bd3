import type { Admin, IHeaders, KafkaMessage, Producer } from 'kafkajs';
import type { RecordHeaders, RecordOrigin } from '../model/change.js';
import { ensureTopic } from '../kafka/topics.js';

/** Header names trustsync adds to a dead letter; the original key, value and headers are kept untouched. */
export const DLQ_HEADERS = {
  flow: 'trustsync.flow',
  topic: 'trustsync.origin.topic',
  partition: 'trustsync.origin.partition',
  offset: 'trustsync.origin.offset',
  code: 'trustsync.error.code',
  message: 'trustsync.error.message',
  attempts: 'trustsync.attempts',
  firstFailure: 'trustsync.first.failure',
  settled: 'trustsync.settled',
  settledReason: 'trustsync.settled.reason',
} as const;

/**
 * How a dead letter was settled: replayed (written, or found stale or already applied) or discarded
 * by a person. The DLQ topic is append-only: a settlement is a record of its own after the letter.
 */
export type Settlement = 'applied' | 'stale' | 'duplicate' | 'ignored' | 'discarded';

export interface DeadLetter {
  key: Buffer | null;
  value: Buffer | null;
  /** The original record's headers. */
  headers: RecordHeaders;
  /** How often the record failed (a failed replay adds one), and when it first did. */
  origin: RecordOrigin;
  code: string;
  message: string;
  attempts: number;
  firstFailure: Date;
}

/** A dead letter as read back from the DLQ topic. */
export interface DlqEntry extends DeadLetter {
  flow: string;
  dlqOffset: string;
}

/** One partition: the DLQ is a list to read in order, not a stream to scale. */
export async function ensureDlqTopic(admin: Admin, topic: string): Promise<void> {
  await ensureTopic(admin, topic, 1);
}

/** Which flow's record a DLQ record is about. */
const originHeaders = (flow: string, origin: RecordOrigin) => ({
  [DLQ_HEADERS.flow]: flow,
  [DLQ_HEADERS.topic]: origin.topic,
  [DLQ_HEADERS.partition]: String(origin.partition),
  [DLQ_HEADERS.offset]: origin.offset,
});

/**
 * Writes dead letters and waits until the broker has them (acks from all replicas): only then
 * may the consumer commit past the originals.
 */
export async function sendDeadLetters(producer: Producer, topic: string, flow: string, letters: DeadLetter[]): Promise<void> {
  if (letters.length === 0) return;
  await producer.send({
    topic,
    acks: -1,
    messages: letters.map((l) => ({
      key: l.key,
      value: l.value,
      headers: {
        ...l.headers,
        ...originHeaders(flow, l.origin),
        [DLQ_HEADERS.code]: l.code,
        [DLQ_HEADERS.message]: l.message.slice(0, 2000),
        [DLQ_HEADERS.attempts]: String(l.attempts),
        [DLQ_HEADERS.firstFailure]: l.firstFailure.toISOString(),
      },
    })),
  });
}

/** Marks dead letters settled: `dlq list` shows them no more, unless one fails again later. */
export async function sendSettlements(
  producer: Producer,
  topic: string,
  flow: string,
  settled: { origin: RecordOrigin; how: Settlement; reason: string }[],
): Promise<void> {
  if (settled.length === 0) return;
  await producer.send({
    topic,
    acks: -1,
    messages: settled.map((x) => ({
      key: null,
      value: null,
      headers: {
        ...originHeaders(flow, x.origin),
        [DLQ_HEADERS.settled]: x.how,
        [DLQ_HEADERS.settledReason]: x.reason.slice(0, 2000),
      },
    })),
  });
}

/** A record of the DLQ topic: a dead letter, or the settlement of one. */
export type DlqRecord = { kind: 'letter'; entry: DlqEntry } | { kind: 'settled'; flow: string; origin: RecordOrigin; how: Settlement; reason: string };

function header(headers: IHeaders | undefined, name: string): string | undefined {
  const v = headers?.[name];
  if (v === undefined) return undefined;
  const first = Array.isArray(v) ? v[0] : v;
  return first === undefined ? undefined : first.toString();
}

/** Reads a DLQ record back; records without trustsync's headers are not ours. */
export function parseDlqRecord(message: KafkaMessage): DlqRecord | undefined {
  const h = message.headers;
  const topic = header(h, DLQ_HEADERS.topic);
  if (topic === undefined) return undefined;
  const how = header(h, DLQ_HEADERS.settled) as Settlement | undefined;
  const origin = { topic, partition: Number(header(h, DLQ_HEADERS.partition)), offset: header(h, DLQ_HEADERS.offset) ?? '' };
  if (how !== undefined) return { kind: 'settled', flow: header(h, DLQ_HEADERS.flow) ?? '', origin, how, reason: header(h, DLQ_HEADERS.settledReason) ?? '' };
  const entry = parseDlqMessage(message);
  return entry && { kind: 'letter', entry };
}

/** Reads a dead letter back; records without trustsync's headers are not dead letters of ours. */
export function parseDlqMessage(message: KafkaMessage): DlqEntry | undefined {
  const h = message.headers;
  const topic = header(h, DLQ_HEADERS.topic);
  if (topic === undefined || header(h, DLQ_HEADERS.settled) !== undefined) return undefined;
  const original: IHeaders = {};
  for (const [k, v] of Object.entries(h ?? {})) if (!k.startsWith('trustsync.') && v !== undefined) original[k] = v;
  return {
    flow: header(h, DLQ_HEADERS.flow) ?? '',
    dlqOffset: message.offset,
    key: message.key,
    value: message.value,
    headers: original,
    origin: { topic, partition: Number(header(h, DLQ_HEADERS.partition)), offset: header(h, DLQ_HEADERS.offset) ?? '' },
    code: header(h, DLQ_HEADERS.code) ?? '',
    message: header(h, DLQ_HEADERS.message) ?? '',
    attempts: Number(header(h, DLQ_HEADERS.attempts) ?? 1),
    firstFailure: new Date(header(h, DLQ_HEADERS.firstFailure) ?? 0),
  };
}
