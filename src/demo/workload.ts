import type pg from 'pg';
import { largeNote } from './schema.js';

/** A small deterministic PRNG (mulberry32): the same seed gives the same workload. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface WorkloadCounts {
  customersInserted: number;
  customersUpdated: number;
  customersDeleted: number;
  ordersInserted: number;
  ordersUpdated: number;
}

const TIERS = ['standard', 'silver', 'gold', 'platinum'];
const STATUSES = ['placed', 'paid', 'shipped', 'delivered', 'cancelled'];

/**
 * Writes a stream of realistic changes to the demo schema: customers signing up, changing tier and
 * balance (a few hot keys take most updates), rewriting their long notes now and then, placing and
 * progressing orders, and leaving (a delete cascades to their orders). Several changes share a transaction.
 */
export async function runWorkload(
  client: pg.Client,
  schema: string,
  operations: number,
  seed = 42,
  onProgress?: (done: number) => void,
): Promise<WorkloadCounts> {
  const random = seededRandom(seed);
  const pick = <T>(xs: T[]): T => xs[Math.floor(random() * xs.length)]!;
  const counts: WorkloadCounts = { customersInserted: 0, customersUpdated: 0, customersDeleted: 0, ordersInserted: 0, ordersUpdated: 0 };
  const { rows } = await client.query<{ max: string | null; omax: string | null }>(
    `SELECT (SELECT max(id) FROM ${schema}.customers)::text AS max, (SELECT max(id) FROM ${schema}.orders)::text AS omax`,
  );
  let nextCustomer = Number(rows[0]?.max ?? 0) + 1;
  let nextOrder = Number(rows[0]?.omax ?? 0) + 1;
  const live: number[] = (await client.query<{ id: string }>(`SELECT id::text FROM ${schema}.customers`)).rows.map((r) => Number(r.id));
  const orders: number[] = (await client.query<{ id: string }>(`SELECT id::text FROM ${schema}.orders`)).rows.map((r) => Number(r.id));
  const hot = () => live[Math.floor(Math.pow(random(), 3) * live.length)]!; // skewed towards the first customers

  let done = 0;
  while (done < operations) {
    const inTransaction = Math.min(1 + Math.floor(random() * 4), operations - done);
    await client.query('BEGIN');
    for (let i = 0; i < inTransaction; i++) {
      const r = random();
      if (live.length < 5 || r < 0.25) {
        const id = nextCustomer++;
        await client.query(`INSERT INTO ${schema}.customers (id, email, name, tier, balance, profile, notes) VALUES ($1, $2, $3, $4, $5, $6, $7)`, [
          id,
          `customer${id}@example.com`,
          `Customer ${id}`,
          pick(TIERS),
          (random() * 1000).toFixed(2),
          JSON.stringify({ tags: [pick(['new', 'vip', 'trial'])], score: Math.floor(random() * 100) }),
          largeNote(id, 1),
        ]);
        live.push(id);
        counts.customersInserted++;
      } else if (r < 0.6) {
        const id = hot();
        if (random() < 0.1) {
          // A note never rewritten to the text it had: every change changes the row.
          await client.query(`UPDATE ${schema}.customers SET notes = $2, updated_at = now() WHERE id = $1`, [id, largeNote(id, `${seed}.${done}`)]);
        } else {
          await client.query(`UPDATE ${schema}.customers SET tier = $2, balance = balance + $3, updated_at = now() WHERE id = $1`, [
            id,
            pick(TIERS),
            (0.01 + random() * 50).toFixed(2),
          ]);
        }
        counts.customersUpdated++;
      } else if (r < 0.8) {
        const id = nextOrder++;
        await client.query(`INSERT INTO ${schema}.orders (id, customer_id, amount, status) VALUES ($1, $2, $3, 'placed')`, [
          id,
          pick(live),
          (random() * 300).toFixed(2),
        ]);
        orders.push(id);
        counts.ordersInserted++;
      } else if (r < 0.95 && orders.length > 0) {
        const res = await client.query(`UPDATE ${schema}.orders SET status = $2 WHERE id = $1`, [pick(orders), pick(STATUSES)]);
        if (res.rowCount) counts.ordersUpdated++;
      } else {
        const index = Math.floor(random() * live.length);
        const [id] = live.splice(index, 1);
        await client.query(`DELETE FROM ${schema}.customers WHERE id = $1`, [id]);
        counts.customersDeleted++;
      }
      done++;
    }
    await client.query('COMMIT');
    onProgress?.(done);
  }
  return counts;
}
