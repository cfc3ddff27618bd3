import avro from 'avsc';
import { SchemaType, type SchemaRegistry } from '@kafkajs/confluent-schema-registry';
import { AvroDecoder, JsonDecoder, type RawRecord, type RecordDecoder } from '../src/decode/debezium.js';
import { avroSchemaRegistry, bigintLongHook } from '../src/decode/avro-registry.js';
import { collapseByKey } from '../src/order/plan.js';
import type { ChangeEvent } from '../src/model/change.js';
import { seededRandom } from '../src/demo/workload.js';
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { PACKAGE_DIR, benchDestinationSettings, stackSettings, type StackSettings } from '../src/stack/settings.js';
import { StackError } from '../src/model/errors.js';
import { postgresClusterDown, postgresClusterUp, stackUp } from '../src/stack/stack.js';
import { table } from '../src/cli/output.js';
import { runContest, type ContestResult } from './contest.js';
import { runMariadbContest } from './mariadb-contest.js';

/*
 * `npm run bench`: the micro-benchmark of trustsync's pure path — decode + order + plan, no I/O — on
 * Debezium change events of the demo's customers (~1 KB as JSON, ~0.9 KB as Avro), one core; then
 * the contest on the local stack (bench/contest.ts). `--events N` and `--keys N` size the contest's
 * workload, `--micro-events N` the pure path's, `--micro` stops after the pure path, `--json` also
 * writes bench/results/<time>.json.
 */

/** A Debezium change of the demo's customers table, as its Avro envelope carries it (plain longs as BigInt). */
function customerChange(i: number, id: number, random: () => number) {
  const lsn = 40_000_000n + BigInt(i) * 96n;
  return {
    before: null,
    after: {
      id: BigInt(id),
      email: `customer${id}@example.com`,
      name: `Customer ${id}`,
      tier: 'gold',
      balance: (random() * 1000).toFixed(2),
      profile: '{"tags": ["vip"], "score": 42}',
      notes: NOTE,
      updated_at: '2026-11-23T15:43:10.304829Z',
    },
    source: {
      version: '3.3.1.Final',
      connector: 'postgresql',
      name: 'cdc.shop',
      ts_ms: 1795448591655n,
      snapshot: 'false',
      db: 'trustsync_source',
      sequence: `["${lsn - 48n}","${lsn}"]`,
      ts_us: 1795448591655717n,
      ts_ns: 1795448591655717000n,
      schema: 'demo',
      table: 'customers',
      txId: BigInt(748 + i),
      lsn,
      xmin: null,
    },
    transaction: null,
    op: i % 10 === 0 ? 'c' : 'u',
    ts_ms: 1795448592096n,
  };
}
const NOTE = 'lorem ipsum dolor sit amet '.repeat(22);

/** The Avro schemas Debezium's converter registers for that table: key, and the envelope. */
const optional = (type: unknown) => ({ type: ['null', type], default: null });
const KEY_SCHEMA = {
  type: 'record',
  name: 'Key',
  namespace: 'cdc.shop.demo.customers',
  fields: [{ name: 'id', type: 'long' }],
  'connect.name': 'cdc.shop.demo.customers.Key',
};
const ENVELOPE_SCHEMA = {
  type: 'record',
  name: 'Envelope',
  namespace: 'cdc.shop.demo.customers',
  'connect.name': 'cdc.shop.demo.customers.Envelope',
  fields: [
    {
      name: 'before',
      ...optional({
        type: 'record',
        name: 'Value',
        'connect.name': 'cdc.shop.demo.customers.Value',
        fields: [
          { name: 'id', type: 'long' },
          { name: 'email', type: 'string' },
          { name: 'name', type: 'string' },
          { name: 'tier', type: 'string' },
          { name: 'balance', type: 'string' },
          { name: 'profile', ...optional({ type: 'string', 'connect.name': 'io.debezium.data.Json' }) },
          { name: 'notes', ...optional('string') },
          { name: 'updated_at', type: { type: 'string', 'connect.name': 'io.debezium.time.ZonedTimestamp' } },
        ],
      }),
    },
    { name: 'after', ...optional('Value') },
    {
      name: 'source',
      type: {
        type: 'record',
        name: 'Source',
        namespace: 'io.debezium.connector.postgresql',
        'connect.name': 'io.debezium.connector.postgresql.Source',
        fields: [
          { name: 'version', type: 'string' },
          { name: 'connector', type: 'string' },
          { name: 'name', type: 'string' },
          { name: 'ts_ms', type: 'long' },
          { name: 'snapshot', ...optional('string') },
          { name: 'db', type: 'string' },
          { name: 'sequence', ...optional('string') },
          { name: 'ts_us', ...optional('long') },
          { name: 'ts_ns', ...optional('long') },
          { name: 'schema', type: 'string' },
          { name: 'table', type: 'string' },
          { name: 'txId', ...optional('long') },
          { name: 'lsn', ...optional('long') },
          { name: 'xmin', ...optional('long') },
        ],
      },
    },
    {
      name: 'transaction',
      ...optional({
        type: 'record',
        name: 'block',
        namespace: 'event',
        fields: [
          { name: 'id', type: 'string' },
          { name: 'total_order', type: 'long' },
          { name: 'data_collection_order', type: 'long' },
        ],
      }),
    },
    { name: 'op', type: 'string' },
    { name: 'ts_ms', ...optional('long') },
  ],
};

const jsonReplacer = (_: string, v: unknown) => (typeof v === 'bigint' ? Number(v) : v);

/**
 * A registry client whose cache already holds both schemas (key id 1, envelope id 2), as after a
 * topic's first record: it encodes the Avro records and serves the decoder with no round trip.
 */
function registryWithSchemasCached(): SchemaRegistry {
  const registry = avroSchemaRegistry('http://127.0.0.1:9/unused');
  registry.cache.setSchema(1, SchemaType.AVRO, avro.Type.forSchema(KEY_SCHEMA as avro.Schema, { typeHook: bigintLongHook }) as never);
  registry.cache.setSchema(2, SchemaType.AVRO, avro.Type.forSchema(ENVELOPE_SCHEMA as avro.Schema, { typeHook: bigintLongHook }) as never);
  return registry;
}

/**
 * `count` changes to 100,000 keys, encoded as Debezium's JSON converter (schemas off) or its Avro
 * converter (Confluent wire format: magic byte, schema id, body) writes them.
 */
async function debeziumRecords(count: number, format: 'json' | 'avro', registry: SchemaRegistry): Promise<RawRecord[]> {
  const random = seededRandom(1);
  const records: RawRecord[] = [];
  for (let i = 0; i < count; i++) {
    const id = Math.floor(random() * 100_000) + 1;
    const change = customerChange(i, id, random);
    const key = format === 'json' ? Buffer.from(JSON.stringify({ id })) : await registry.encode(1, { id: BigInt(id) });
    const value = format === 'json' ? Buffer.from(JSON.stringify(change, jsonReplacer)) : await registry.encode(2, change);
    records.push({ key, value, origin: { topic: 'cdc.shop.demo.customers', partition: id % 6, offset: String(i) } });
  }
  return records;
}

async function decodeOrderPlan(decoder: RecordDecoder, records: RawRecord[], batch: number): Promise<number> {
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

interface MicroResult {
  format: 'json' | 'avro';
  events: number;
  avgEventBytes: number;
  eventsPerSecond: number;
  min: number;
  max: number;
}

/** The pure path, median of three runs, in events per second on one core. */
async function microBenchmark(format: 'json' | 'avro', count: number): Promise<MicroResult> {
  const registry = registryWithSchemasCached();
  const records = await debeziumRecords(count, format, registry);
  const decoder = format === 'json' ? new JsonDecoder() : new AvroDecoder(registry);
  const bytes = records.reduce((n, r) => n + (r.value?.length ?? 0), 0) / records.length;
  await decodeOrderPlan(decoder, records.slice(0, 20_000), 1000); // warm-up: let the JIT settle
  const runs: number[] = [];
  for (let i = 0; i < 3; i++) {
    const started = process.hrtime.bigint();
    await decodeOrderPlan(decoder, records, 1000);
    runs.push(count / (Number(process.hrtime.bigint() - started) / 1e9));
  }
  runs.sort((a, b) => a - b);
  return {
    format,
    events: count,
    avgEventBytes: Math.round(bytes),
    eventsPerSecond: Math.round(runs[1]!),
    min: Math.round(runs[0]!),
    max: Math.round(runs[2]!),
  };
}

/** The destination's PostgreSQL cluster: the stack's settings, on a port and in a state folder of its own. */
function benchDestination(s: StackSettings): StackSettings {
  if (process.env.TRUSTSYNC_PG_DATA) {
    throw new StackError(
      "TRUSTSYNC_PG_DATA names one data folder, and the bench runs a second PostgreSQL cluster (the destination) beside the stack's.",
      'unset TRUSTSYNC_PG_DATA for `npm run bench`.',
    );
  }
  return benchDestinationSettings(s);
}

const option = (name: string, fallback: number) => {
  const at = process.argv.indexOf(name);
  const value = at > 0 ? Number(process.argv[at + 1]) : fallback;
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name} ${process.argv[at + 1]}: give a whole number above 0`);
  return value;
};
const fixed = (n: number | null, digits = 0) => (n === null ? '-' : n.toLocaleString('en', { maximumFractionDigits: digits, minimumFractionDigits: digits }));
/** CPU seconds as their sum and its parts: `12 = 8 + 3 + 1`. */
const cpuSplit = (...parts: number[]) => `${fixed(parts.reduce((a, b) => a + b, 0))} = ${parts.map((p) => fixed(p)).join(' + ')}`;

/** What every contender's row shows, in the tables' column order. */
type RunFigures = Record<'eventsPerSecond' | 'seconds' | 'p50Ms' | 'p99Ms' | 'peakRssMb' | 'wrongRows' | 'missingRows', number | null>;
const resultCells = (x: RunFigures, cpu: number[]) => [
  fixed(x.eventsPerSecond),
  fixed(x.seconds, 1),
  fixed(x.p50Ms, 1),
  fixed(x.p99Ms, 1),
  fixed(x.peakRssMb),
  cpuSplit(...cpu),
  fixed(x.wrongRows),
  fixed(x.missingRows),
];

async function main(): Promise<void> {
  const events = option('--events', 1_000_000);
  const keys = option('--keys', Math.min(100_000, Math.max(1, Math.floor(events / 10))));
  const microEvents = option('--micro-events', 200_000);
  const micro = [await microBenchmark('json', microEvents), await microBenchmark('avro', microEvents)];
  console.log(
    table([
      ['pure path (no I/O)', 'events', 'avg event', 'events/s (median of 3)', 'min', 'max'],
      ...micro.map((m) => [
        `decode + order + plan, ${m.format === 'json' ? 'JSON' : 'Avro'}, 1 core`,
        fixed(m.events),
        `${m.avgEventBytes} B`,
        fixed(m.eventsPerSecond),
        fixed(m.min),
        fixed(m.max),
      ]),
    ]),
  );
  if (process.argv.includes('--micro')) return;

  const s = stackSettings();
  const status = await stackUp(s, (line) => console.log(`[stack] ${line}`));
  if (!status.healthy) throw new Error('the local stack is not healthy; see `trustsync stack status`');
  if (process.argv.includes('--to') && process.argv[process.argv.indexOf('--to') + 1] === 'mariadb')
    return mariadbRound(s, events, keys, option('--rounds', 3), micro);
  const destination = benchDestination(s);
  await postgresClusterUp(destination, 'TRUSTSYNC_BENCH_PG_PORT', (line) => console.log(`[destination] ${line}`));
  // Ctrl-C too stops the destination's cluster (the stack's own stays up, as `stack up` left it).
  process.once('SIGINT', () => {
    console.log("interrupted: stopping the destination's cluster (the next run removes this one's connectors)");
    void postgresClusterDown(destination).finally(() => process.exit(130));
  });
  let contest: ContestResult;
  try {
    contest = await runContest(s, {
      destination,
      events,
      keys,
      rounds: option('--rounds', 3),
      remedyEvents: option('--remedy-events', Math.max(1, Math.floor(events / 2))),
      naive: process.argv.includes('--naive'),
      log: (line) => console.log(line),
    });
  } finally {
    await postgresClusterDown(destination);
  }
  const w = contest.workload;
  console.log(
    `\nworkload: ${fixed(w.events)} change events over ${fixed(w.keys)} keys (${fixed(w.inserts)} inserts, ${fixed(w.updates)} updates with the hottest 1 % of keys in every statement, ${fixed(w.deletes)} deletes; ${fixed(w.toastedRows)} rows with a TOASTed column), captured by Debezium in ${fixed(w.captureSeconds)} s; re-delivery round: ${fixed(contest.redeliveredRecords)} old records appended; TOAST-remedy round: ${fixed(contest.remedyWorkload.events)} changes captured with REPLICA IDENTITY FULL\n`,
  );
  console.log(
    table([
      [
        'phase',
        'round',
        'contender',
        'events/s',
        'seconds',
        'p50 ms',
        'p99 ms',
        'peak RSS MB',
        'CPU s = itself + dest PG + broker',
        'wrong rows',
        'missing rows',
      ],
      ...contest.runs.map((r) => [
        r.phase,
        String(r.round),
        r.contender,
        ...resultCells(r, [r.cpuSeconds.contender, r.cpuSeconds.destinationPostgres, r.cpuSeconds.broker]),
      ]),
    ]),
  );
  console.log(
    `\n${table([
      ['phase', 'contender', 'rounds', 'median events/s', 'range', 'CPU µs a change (median)', 'wrong rows (most)', 'missing rows (most)'],
      ...contest.summary.map((x) => [
        x.phase,
        x.contender,
        String(x.rounds),
        fixed(x.medianEventsPerSecond),
        `${fixed(x.minEventsPerSecond)}–${fixed(x.maxEventsPerSecond)}`,
        fixed(x.medianCpuMicrosPerChange),
        fixed(x.wrongRows),
        fixed(x.missingRows),
      ]),
    ])}`,
  );
  const st = contest.steady;
  console.log(
    `\ntrustsync live at half its rate: ${fixed(st.events)} changes in ${fixed(st.seconds)} s (${fixed(st.eventsPerSecond)}/s) · apply p50 ${fixed(st.applyP50Ms)} ms, p99 ${fixed(st.applyP99Ms)} ms · end to end (source commit → destination commit) p50 ${fixed(st.endToEndP50Ms)} ms, p99 ${fixed(st.endToEndP99Ms)} ms · steady RSS ${fixed(st.steadyRssMb)} MB · consumer lag up to ${fixed(st.maxLagRecords)} records · ${fixed(st.wrongRows)} wrong rows, ${fixed(st.missingRows)} missing`,
  );
  console.log(
    `  CPU in use meanwhile, in cores (${cpus().length} here): ${Object.entries(st.cpuCores)
      .map(([k, v]) => `${k} ${fixed(v, 2)}`)
      .join(', ')}`,
  );
  console.log(
    `\nstream rounds, medians: trustsync ÷ Debezium JDBC sink ${fixed(contest.trustsyncOverJdbc, 2)} · ÷ ceiling consumer ${fixed(contest.trustsyncOverCeiling, 2)}`,
  );
  console.log(
    `JDBC sink settings: ${Object.entries(contest.jdbcSinkSettings)
      .filter(([k]) => !k.startsWith('connection.username') && !k.startsWith('connection.password') && !k.includes('converter'))
      .map(([k, v]) => `${k}=${v}`)
      .join(', ')}; Connect worker JVM: ${contest.connectJvm}`,
  );
  if (process.argv.includes('--json')) writeResults(`postgres-${commitOf()}-`, { micro, ...contest });
}

/** The commit measured (with `+` when the working tree differs from it), for the results' file name. */
function commitOf(): string {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: PACKAGE_DIR, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: PACKAGE_DIR, encoding: 'utf8' }).trim() !== '';
    return `${head}${dirty ? '+' : ''}`;
  } catch {
    return 'unknown';
  }
}

/** bench/results/<prefix><time>.json: the figures, with the machine they were measured on. */
function writeResults(prefix: string, figures: Record<string, unknown>): void {
  const dir = join(PACKAGE_DIR, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${prefix}${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  const machine = { cpus: cpus().length, cpu: cpus()[0]?.model ?? 'unknown', memoryGb: Math.round(totalmem() / 2 ** 30), node: process.version };
  writeFileSync(file, `${JSON.stringify({ machine, ...figures }, null, 2)}\n`);
  console.log(`results: ${file}`);
}

/** `--to mariadb`: trustsync against the Debezium JDBC sink into the stack's MariaDB, repeated rounds. */
async function mariadbRound(s: ReturnType<typeof stackSettings>, events: number, keys: number, rounds: number, micro: unknown): Promise<void> {
  const r = await runMariadbContest(s, { events, keys, rounds, log: (line) => console.log(line) });
  const w = r.workload;
  console.log(
    `\nworkload: ${fixed(w.events)} change events over ${fixed(w.keys)} keys (${fixed(w.inserts)} inserts, ${fixed(w.updates)} updates, ${fixed(w.deletes)} deletes; ${fixed(w.toastedRows)} rows with a TOASTed column) into MariaDB, ${rounds} rounds, order alternating\n`,
  );
  console.log(
    table([
      ['round', 'contender', 'events/s', 'seconds', 'p50 ms', 'p99 ms', 'peak RSS MB', 'CPU s = itself + MariaDB + broker', 'wrong rows', 'missing rows'],
      ...r.runs.map((x) => [String(x.round), x.contender, ...resultCells(x, [x.cpuSeconds.contender, x.cpuSeconds.mariadb, x.cpuSeconds.broker])]),
    ]),
  );
  console.log(
    `\nmedian events/s: ${r.summary.map((x) => `${x.contender} ${fixed(x.medianEventsPerSecond)}`).join(' · ')} · trustsync ÷ Debezium JDBC sink ${fixed(r.trustsyncOverJdbc, 2)}`,
  );
  if (process.argv.includes('--json')) writeResults(`mariadb-${commitOf()}-`, { micro, ...r });
}

await main();
