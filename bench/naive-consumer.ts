import pg from 'pg';
import { Kafka, logLevel } from 'kafkajs';
import { reportLatenciesOnSigterm } from './write-latencies.js';

/**
 * The baseline many teams start with: a kafkajs consumer that writes each Debezium message as it
 * arrives, one upsert (or delete) per message, offsets auto-committed. Arrival order, no guards.
 * Usage: naive-consumer BROKERS TOPIC GROUP POSTGRES_URL TABLE. On SIGTERM it prints its per-write
 * latencies (p50, p99, in ms) as one JSON line and exits.
 */
const [brokers, topic, group, url, table] = process.argv.slice(2) as [string, string, string, string, string];
const COLUMNS = ['id', 'name', 'qty', 'price_cents', 'notes', 'updated_at'];

const db = new pg.Client(url);
await db.connect();
const upsert = `INSERT INTO ${table} (${COLUMNS.join(', ')}) VALUES (${COLUMNS.map((_, i) => `$${i + 1}`).join(', ')})
  ON CONFLICT (id) DO UPDATE SET ${COLUMNS.slice(1)
    .map((c) => `${c} = EXCLUDED.${c}`)
    .join(', ')}`;
const latencies: number[] = [];

const kafka = new Kafka({ clientId: 'naive-consumer', brokers: brokers.split(','), logLevel: logLevel.NOTHING });
const consumer = kafka.consumer({ groupId: group });
await consumer.connect();
await consumer.subscribe({ topics: [topic], fromBeginning: true });
await consumer.run({
  eachMessage: async ({ message }) => {
    if (!message.value) return; // a tombstone
    const parsed = JSON.parse(message.value.toString()) as { payload?: Record<string, unknown> };
    const change = (parsed.payload ?? parsed) as { op: string; before: Record<string, unknown> | null; after: Record<string, unknown> | null };
    const started = process.hrtime.bigint();
    if (change.op === 'd') await db.query(`DELETE FROM ${table} WHERE id = $1`, [change.before!.id]);
    else
      await db.query(
        upsert,
        COLUMNS.map((c) => change.after![c] ?? null),
      );
    latencies.push(Number(process.hrtime.bigint() - started) / 1e6);
  },
});

reportLatenciesOnSigterm(latencies, async () => {
  await consumer.disconnect().catch(() => undefined);
  await db.end();
});
