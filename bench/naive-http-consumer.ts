import { Kafka, logLevel } from 'kafkajs';

/**
 * The HTTP baseline many teams start with: a kafkajs consumer that sends each Debezium message to
 * the API as it arrives — PUT the row, or DELETE — partitions in parallel, offsets committed after
 * each batch. Arrival order, no guards, no idempotency keys.
 * Usage: naive-http-consumer BROKERS TOPIC GROUP API_URL COLLECTION PARTITIONS_AT_ONCE TOKEN
 */
const [brokers, topic, group, apiUrl, collection, parallel, token] = process.argv.slice(2) as [string, string, string, string, string, string, string];
const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };

const kafka = new Kafka({ clientId: 'naive-http-consumer', brokers: brokers.split(','), logLevel: logLevel.NOTHING });
const consumer = kafka.consumer({ groupId: group });
await consumer.connect();
await consumer.subscribe({ topics: [topic], fromBeginning: true });
await consumer.run({
  partitionsConsumedConcurrently: Number(parallel),
  eachMessage: async ({ message }) => {
    if (!message.value) return; // a tombstone
    const change = JSON.parse(message.value.toString()) as { op: string; before: { id: number } | null; after: { id: number } | null };
    const id = (change.after ?? change.before)!.id;
    const url = `${apiUrl}/${collection}/${id}`;
    // A failed request throws: kafkajs retries the message, as such a consumer would.
    const answer =
      change.op === 'd' ? await fetch(url, { method: 'DELETE', headers }) : await fetch(url, { method: 'PUT', headers, body: JSON.stringify(change.after) });
    await answer.arrayBuffer();
    if (answer.status >= 500 || answer.status === 429) throw new Error(`${url} answered ${answer.status}`);
  },
});
process.once('SIGTERM', () => void consumer.disconnect().then(() => process.exit(0)));
