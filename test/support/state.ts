import { SchemaRegistry } from '@kafkajs/confluent-schema-registry';
import type { Kafka } from 'kafkajs';
import { endpoints } from './capture.js';

/**
 * A state topic as an analyst reads it: a plain Kafka consumer (read-committed) and the Confluent
 * registry client — none of trustsync's code. The latest record per key (null: a tombstone), and
 * the latest row record per key as it was sent.
 */
export async function readStateTopic(
  kafka: Kafka,
  topic: string,
  group: string,
): Promise<{ latest: Map<string, Record<string, unknown> | null>; tombstones: number; lastRows: Map<string, { partition: number; value: Buffer }> }> {
  const registry = new SchemaRegistry({ host: endpoints.registryCcompatUrl });
  const latest = new Map<string, Record<string, unknown> | null>();
  const lastRows = new Map<string, { partition: number; value: Buffer }>();
  let tombstones = 0;
  const consumer = kafka.consumer({ groupId: `${group}-analyst-${Date.now()}` });
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  let lastSeen = Date.now();
  await consumer.run({
    eachMessage: async ({ partition, message }) => {
      lastSeen = Date.now();
      const key = message.key!.toString();
      if (message.value === null) {
        tombstones++;
        latest.set(key, null);
      } else {
        latest.set(key, (await registry.decode(message.value)) as Record<string, unknown>);
        lastRows.set(key, { partition, value: message.value });
      }
    },
  });
  // Everything is in the topic already: read until nothing has come for three seconds.
  const deadline = Date.now() + 120_000;
  while (Date.now() - lastSeen < 3000) {
    if (Date.now() > deadline) throw new Error(`state topic ${topic} was still delivering records after 120 s`);
    await new Promise((r) => setTimeout(r, 250));
  }
  await consumer.disconnect();
  return { latest, tombstones, lastRows };
}
