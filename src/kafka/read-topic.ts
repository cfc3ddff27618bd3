import type { Kafka, KafkaMessage } from 'kafkajs';
import { topicOffsets } from './topics.js';

export interface ReadMessage {
  topic: string;
  partition: number;
  message: KafkaMessage;
}

/**
 * Reads topics from the beginning up to their ends as of the call, with a throwaway consumer group
 * that is deleted afterwards (it commits nothing and leaves nothing behind).
 */
export async function readTopicsToEnd(kafka: Kafka, topics: string[], timeoutMs = 60_000): Promise<ReadMessage[]> {
  const admin = kafka.admin();
  await admin.connect();
  const groupId = `trustsync-reader-${process.pid}-${Date.now()}`;
  try {
    const remaining = new Map<string, bigint>();
    for (const topic of topics) {
      for (const o of await topicOffsets(admin, topic)) {
        if (BigInt(o.high) > BigInt(o.low)) remaining.set(`${topic}/${o.partition}`, BigInt(o.high));
      }
    }
    const out: ReadMessage[] = [];
    if (remaining.size === 0) return out;
    const consumer = kafka.consumer({ groupId, allowAutoTopicCreation: false });
    await consumer.connect();
    try {
      await consumer.subscribe({ topics, fromBeginning: true });
      let finish!: () => void;
      const finished = new Promise<void>((r) => (finish = r));
      await consumer.run({
        autoCommit: false,
        eachMessage: async ({ topic, partition, message }) => {
          const id = `${topic}/${partition}`;
          const end = remaining.get(id);
          if (end === undefined || BigInt(message.offset) >= end) return;
          out.push({ topic, partition, message });
          if (BigInt(message.offset) + 1n >= end) {
            remaining.delete(id);
            if (remaining.size === 0) finish();
          }
        },
      });
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`reading ${topics.join(', ')} did not reach the end within ${timeoutMs / 1000}s`)), timeoutMs);
      });
      await Promise.race([finished, timeout]).finally(() => clearTimeout(timer));
    } finally {
      await consumer.disconnect();
    }
    return out;
  } finally {
    await admin.deleteGroups([groupId]).catch(() => undefined);
    await admin.disconnect();
  }
}
