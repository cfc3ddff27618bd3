import pg from 'pg';
import { Kafka, logLevel } from 'kafkajs';
import { reportLatenciesOnSigterm } from './write-latencies.js';

/**
 * The ceiling: the least a consumer must do to land Debezium's changes in a table, with the fetch
 * settings and parallelism trustsync has. Per fetched batch of a partition it parses the payloads,
 * keeps the newest change per key (arrival order), and writes one set-based upsert and one delete;
 * offsets are committed after the write. No ledger, no history, no guard against stale or repeated
 * changes, no TOAST handling: what trustsync does beyond it is what its guarantees cost.
 * Usage: ceiling-consumer BROKERS TOPIC GROUP POSTGRES_URL TABLE LANES. On SIGTERM it prints its
 * per-write latencies (p50, p99, in ms) as one JSON line and exits.
 */
const [brokers, topic, group, url, table, lanesText] = process.argv.slice(2) as [string, string, string, string, string, string];
const lanes = Number(lanesText);
const COLUMNS = ['id', 'name', 'qty', 'price_cents', 'notes', 'updated_at'];
const TYPES = ['bigint', 'text', 'int', 'bigint', 'text', 'timestamptz'];

const pool = new pg.Pool({ connectionString: url, max: lanes });
const upsert = `INSERT INTO ${table} (${COLUMNS.join(', ')}) SELECT * FROM unnest(${TYPES.map((t, i) => `$${i + 1}::${t}[]`).join(', ')})
  ON CONFLICT (id) DO UPDATE SET ${COLUMNS.slice(1)
    .map((c) => `${c} = EXCLUDED.${c}`)
    .join(', ')}`;
const latencies: number[] = [];

type Change = { op: string; before: Record<string, unknown> | null; after: Record<string, unknown> | null };

const kafka = new Kafka({ clientId: 'ceiling-consumer', brokers: brokers.split(','), logLevel: logLevel.NOTHING });
const consumer = kafka.consumer({ groupId: group, maxBytesPerPartition: 6 * 1024 * 1024, maxBytes: 24 * 1024 * 1024 });
await consumer.connect();
await consumer.subscribe({ topics: [topic], fromBeginning: true });
await consumer.run({
  partitionsConsumedConcurrently: lanes,
  eachBatch: async ({ batch }) => {
    const newest = new Map<string, Change>();
    for (const message of batch.messages) {
      if (!message.value || !message.key) continue; // a tombstone
      const parsed = JSON.parse(message.value.toString()) as { payload?: Change };
      const change = (parsed.payload ?? parsed) as Change;
      const id = String((change.after ?? change.before)!.id);
      newest.set(id, change);
    }
    const upserts = [...newest.values()].filter((c) => c.op !== 'd');
    const deletes = [...newest.entries()].filter(([, c]) => c.op === 'd').map(([id]) => id);
    const started = process.hrtime.bigint();
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      if (upserts.length)
        await client.query(
          upsert,
          COLUMNS.map((c) => upserts.map((u) => u.after![c] ?? null)),
        );
      if (deletes.length) await client.query(`DELETE FROM ${table} WHERE id = ANY($1::bigint[])`, [deletes]);
      await client.query('COMMIT');
    } finally {
      client.release();
    }
    latencies.push(Number(process.hrtime.bigint() - started) / 1e6);
  },
});

reportLatenciesOnSigterm(latencies, async () => {
  await consumer.disconnect().catch(() => undefined);
  await pool.end();
});
