import { JsonDecoder, type RawRecord } from '../src/decode/debezium.js';
import { collapseByKey } from '../src/order/plan.js';
import type { ChangeEvent } from '../src/model/change.js';
import { seededRandom } from '../src/demo/workload.js';

/**
 * Micro-benchmark of trustsync's pure path — decode + order + plan, no I/O — on ~1 KB Debezium JSON
 * change events, one core. Prints events per second; `--events N` sets the volume.
 */
function debeziumRecords(count: number, keys: number): RawRecord[] {
  const random = seededRandom(1);
  const records: RawRecord[] = [];
  const note = 'lorem ipsum dolor sit amet '.repeat(22);
  for (let i = 0; i < count; i++) {
    const id = Math.floor(random() * keys) + 1;
    const lsn = 40_000_000 + i * 96;
    const value = {
      before: null,
      after: { id, email: `customer${id}@example.com`, name: `Customer ${id}`, tier: 'gold', balance: (random() * 1000).toFixed(2), profile: '{"tags": ["vip"], "score": 42}', notes: note, updated_at: '2026-11-23T15:43:10.304829Z' },
      source: { version: '3.3.1.Final', connector: 'postgresql', name: 'cdc.shop', ts_ms: 1795448591655, snapshot: 'false', db: 'trustsync_source', sequence: `["${lsn - 48}","${lsn}"]`, ts_us: 1795448591655717, ts_ns: 1795448591655717000, schema: 'demo', table: 'customers', txId: 748 + i, lsn, xmin: null },
      transaction: null,
      op: i % 10 === 0 ? 'c' : 'u',
      ts_ms: 1795448592096,
    };
    records.push({ key: Buffer.from(JSON.stringify({ id })), value: Buffer.from(JSON.stringify(value)), origin: { topic: 'cdc.shop.demo.customers', partition: id % 6, offset: String(i) } });
  }
  return records;
}

async function decodeOrderPlan(records: RawRecord[], batch: number): Promise<number> {
  const decoder = new JsonDecoder();
  let written = 0;
  for (let start = 0; start < records.length; start += batch) {
    const events: ChangeEvent[] = [];
    for (const r of records.slice(start, start + batch)) {
      const d = await decoder.decode(r);
      if (d.kind === 'change') events.push(d);
    }
    written += collapseByKey(events).latest.length;
  }
  return written;
}

async function main(): Promise<void> {
  const arg = process.argv.indexOf('--events');
  const count = arg > 0 ? Number(process.argv[arg + 1]) : 200_000;
  const records = debeziumRecords(count, 100_000);
  const bytes = records.reduce((n, r) => n + (r.value?.length ?? 0), 0) / records.length;
  await decodeOrderPlan(records.slice(0, 20_000), 1000); // warm-up: let the JIT settle
  const runs: number[] = [];
  for (let i = 0; i < 3; i++) {
    const started = process.hrtime.bigint();
    await decodeOrderPlan(records, 1000);
    runs.push(count / (Number(process.hrtime.bigint() - started) / 1e9));
  }
  runs.sort((a, b) => a - b);
  const rows = [
    ['benchmark', 'events', 'avg event', 'events/s (median of 3)', 'min', 'max'],
    ['decode + order + plan, JSON, 1 core', String(count), `${bytes.toFixed(0)} B`, runs[1]!.toFixed(0), runs[0]!.toFixed(0), runs[2]!.toFixed(0)],
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows) console.log(r.map((c, i) => c.padEnd(widths[i]!)).join('  '));
}

await main();
