import { spawn, type ChildProcess } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, openSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kafka, logLevel, type Message } from 'kafkajs';
import pg from 'pg';
import { stringify } from 'yaml';
import { CrmApi } from '../src/demo/crm-api.js';
import { seededRandom } from '../src/demo/workload.js';
import { PACKAGE_DIR, stackEndpoints, stackSettings } from '../src/stack/settings.js';
import { stackUp } from '../src/stack/stack.js';
import { table } from '../src/cli/output.js';
import { committedAtEnd, sleep, waitExit } from './contest.js';

/*
 * `npm run bench:http`: changes per second into an HTTP API (the example CRM API, in this process,
 * with 1 ms and 20 ms of service time per request), trustsync (`trustsync run`, a process of its
 * own) against the consumer many teams write first (bench/naive-http-consumer.ts: one PUT or
 * DELETE per message as it arrives, partitions in parallel). The workload is Debezium JSON changes
 * of one table written straight to a 6-partition topic: a stream of inserts, updates and deletes
 * over hot keys, then an old window delivered again (as a rebalance or a replay from an old offset
 * does). A run ends when the contender's offsets are committed at the topic's end; then the API's
 * records are compared with the newest change of each key (an independent model): wrong records
 * are counted for both. Rounds are repeated and interleaved, the first contender alternating.
 * `--events N --keys N --rounds N --json` (results under bench/results/).
 */

const arg = (name: string, fallback: number) => (process.argv.includes(name) ? Number(process.argv[process.argv.indexOf(name) + 1]) : fallback);
const EVENTS = arg('--events', 6000);
const KEYS = arg('--keys', 1000);
const ROUNDS = arg('--rounds', 2);
const SERVICE_MS = [1, 20];
const CONCURRENCY = [4, 16];
const PARTITIONS = 6;
const TOKEN = 'bench-token';
const DEADLINE_MS = 600_000;

interface Change {
  id: number;
  op: 'c' | 'u' | 'd';
  lsn: number;
  after: { id: number; name: string; qty: number } | null;
}

/** The stream, then an old window of it again; and the state each key ends in (newest change by position). */
function workload(seed: number): { messages: Message[]; expected: Map<string, Record<string, unknown>> } {
  const random = seededRandom(seed);
  const alive = new Set<number>();
  const changes: Change[] = [];
  for (let i = 0; i < EVENTS; i++) {
    // A hot tenth of the keys takes half of the changes.
    const id = 1 + (random() < 0.5 ? Math.floor(random() * (KEYS / 10)) : Math.floor(random() * KEYS));
    const lsn = 1_000_000 + i * 64;
    if (alive.has(id) && random() < 0.05) {
      alive.delete(id);
      changes.push({ id, op: 'd', lsn, after: null });
    } else {
      changes.push({ id, op: alive.has(id) ? 'u' : 'c', lsn, after: { id, name: `item ${id} v${i}`, qty: Math.floor(random() * 1000) } });
      alive.add(id);
    }
  }
  const expected = new Map<string, Record<string, unknown>>();
  for (const c of changes) {
    if (c.after) expected.set(String(c.id), c.after);
    else expected.delete(String(c.id));
  }
  const from = Math.floor(EVENTS * 0.4);
  const again = changes.slice(from, from + Math.floor(EVENTS / 10));
  const message = (c: Change): Message => ({
    key: JSON.stringify({ id: c.id }),
    value: JSON.stringify({
      before: c.op === 'd' ? { id: c.id } : null,
      after: c.after,
      source: {
        connector: 'postgresql',
        name: 'bench',
        ts_ms: 1_796_000_000_000,
        snapshot: 'false',
        db: 'src',
        sequence: `["${c.lsn - 8}","${c.lsn}"]`,
        schema: 'bench',
        table: 'items',
        txId: c.lsn,
        lsn: c.lsn,
      },
      op: c.op,
      ts_ms: 1_796_000_000_001,
    }),
  });
  return { messages: [...changes, ...again].map(message), expected };
}

interface Run {
  contender: 'trustsync' | 'naive';
  serviceMs: number;
  concurrency: number;
  round: number;
  events: number;
  seconds: number;
  changesPerSecond: number;
  requests: number;
  requestsPerSecond: number;
  wrongRecords: number;
  missingRecords: number;
  strayRecords: number;
}

const s = stackSettings();
const status = await stackUp(s, () => undefined);
if (!status.healthy) throw new Error('the local stack is not healthy; see `trustsync stack status`');
const e = stackEndpoints(s);
const kafka = new Kafka({ clientId: 'trustsync-bench-http', brokers: e.kafkaBrokers, logLevel: logLevel.NOTHING });
const control = new pg.Client(e.postgresUrl('trustsync_dest'));
await control.connect();
const dir = mkdtempSync(join(tmpdir(), 'trustsync-bench-http-'));
const stamp = Date.now().toString(36);

/** Writes one run's workload to a topic of its own. */
async function topicWith(name: string, messages: Message[]): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    await admin.createTopics({ topics: [{ topic: name, numPartitions: PARTITIONS }], waitForLeaders: true });
  } finally {
    await admin.disconnect();
  }
  const producer = kafka.producer();
  await producer.connect();
  for (let i = 0; i < messages.length; i += 1000) await producer.send({ topic: name, messages: messages.slice(i, i + 1000) });
  await producer.disconnect();
}

function startContender(contender: Run['contender'], name: string, topic: string, api: CrmApi, concurrency: number): ChildProcess {
  const log = openSync(join(dir, `${name}.log`), 'a');
  if (contender === 'naive') {
    const args = [
      join(PACKAGE_DIR, 'dist', 'bench', 'naive-http-consumer.js'),
      e.kafkaBrokers.join(','),
      topic,
      name,
      api.url,
      'items',
      String(Math.min(concurrency, PARTITIONS)),
      TOKEN,
    ];
    return spawn(process.execPath, args, { stdio: ['ignore', log, log] });
  }
  const file = join(dir, `${name}.yaml`);
  writeFileSync(
    file,
    stringify({
      flow: name,
      source: { brokers: e.kafkaBrokers, group: name, decoding: 'json' },
      destination: {
        url: api.url,
        http: { control: e.postgresUrl('trustsync_dest'), auth: { type: 'bearer', token: { env: 'BENCH_API_TOKEN' } }, concurrency },
        tables: [
          { topic, table: `${name}.items`, http: { upsert: { method: 'PUT', path: '/items/{id}' }, delete: { method: 'DELETE', path: '/items/{id}' } } },
        ],
      },
      batch: { maxRows: 500, maxWaitMs: 20 },
      log: { level: 'warn' },
    }),
  );
  return spawn(process.execPath, [join(PACKAGE_DIR, 'bin', 'trustsync.js'), 'run', '--config', file], {
    stdio: ['ignore', log, log],
    env: { ...process.env, BENCH_API_TOKEN: TOKEN },
  });
}

async function run(contender: Run['contender'], serviceMs: number, concurrency: number, round: number, seed: number): Promise<Run> {
  const name = `httpbench_${stamp}_${contender}_${serviceMs}_${concurrency}_${round}`;
  const { messages, expected } = workload(seed);
  await topicWith(name, messages);
  const api = await new CrmApi({ token: TOKEN }).start();
  api.delayMs = serviceMs;
  const started = Date.now();
  const child = startContender(contender, name, name, api, concurrency);
  let seconds: number | undefined;
  try {
    while (Date.now() - started < DEADLINE_MS) {
      if (child.exitCode !== null) throw new Error(`${contender} exited (${child.exitCode}) before the end of ${name}`);
      if (await committedAtEnd(kafka, name, name)) {
        seconds = (Date.now() - started) / 1000;
        break;
      }
      await sleep(100);
    }
    if (seconds === undefined) throw new Error(`${contender} did not reach the end of ${name} in ${DEADLINE_MS / 1000} s`);
  } finally {
    child.kill('SIGTERM');
    await waitExit(child);
    await api.stop();
  }
  const held = api.records('items');
  let wrong = 0;
  let missing = 0;
  for (const [id, row] of expected) {
    const got = held.get(id);
    if (!got) missing++;
    else if (JSON.stringify({ id: got.id, name: got.name, qty: got.qty }) !== JSON.stringify(row)) wrong++;
  }
  const stray = [...held.keys()].filter((id) => !expected.has(id)).length;
  const requests = api.requests.filter((r) => r.method !== 'HEAD').length;
  await control.query(`DELETE FROM trustsync.key_positions WHERE target = $1`, [`${name}.items`]);
  await control.query(`DELETE FROM trustsync.sent_positions WHERE target = $1`, [`${name}.items`]);
  await control.query(`DELETE FROM trustsync.history WHERE target = $1`, [`${name}.items`]);
  return {
    contender,
    serviceMs,
    concurrency,
    round,
    events: messages.length,
    seconds,
    changesPerSecond: Math.round(messages.length / seconds),
    requests,
    requestsPerSecond: Math.round(requests / seconds),
    wrongRecords: wrong,
    missingRecords: missing,
    strayRecords: stray,
  };
}

const runs: Run[] = [];
try {
  for (let round = 0; round < ROUNDS; round++)
    for (const serviceMs of SERVICE_MS)
      for (const concurrency of CONCURRENCY) {
        const order: Run['contender'][] = round % 2 === 0 ? ['trustsync', 'naive'] : ['naive', 'trustsync'];
        for (const contender of order) {
          const r = await run(contender, serviceMs, concurrency, round, 100 + round);
          runs.push(r);
          console.log(
            `round ${round + 1} · ${serviceMs} ms · concurrency ${concurrency} · ${contender}: ${r.changesPerSecond} changes/s, ${r.requestsPerSecond} requests/s, ${r.wrongRecords + r.missingRecords + r.strayRecords} wrong records`,
          );
        }
      }
} finally {
  await control.end();
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;
const rows: string[][] = [];
for (const serviceMs of SERVICE_MS)
  for (const concurrency of CONCURRENCY) {
    const of = (c: Run['contender']) => runs.filter((r) => r.contender === c && r.serviceMs === serviceMs && r.concurrency === concurrency);
    const [t, n] = [of('trustsync'), of('naive')];
    rows.push([
      `${serviceMs} ms`,
      String(concurrency),
      String(median(t.map((r) => r.changesPerSecond))),
      String(median(n.map((r) => r.changesPerSecond))),
      String(median(t.map((r) => r.requestsPerSecond))),
      String(median(n.map((r) => r.requestsPerSecond))),
      String(Math.max(...t.map((r) => r.wrongRecords + r.missingRecords + r.strayRecords))),
      String(Math.max(...n.map((r) => r.wrongRecords + r.missingRecords + r.strayRecords))),
    ]);
  }
console.log(
  `\n${EVENTS} changes over ${KEYS} keys, then ${Math.floor(EVENTS / 10)} of them again; medians of ${ROUNDS} rounds; wrong = wrong + missing + stray records, the worst round\n`,
);
console.log(
  table([
    ['service', 'concurrency', 'trustsync changes/s', 'naive changes/s', 'trustsync requests/s', 'naive requests/s', 'trustsync wrong', 'naive wrong'],
    ...rows,
  ]),
);

if (process.argv.includes('--json')) {
  const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: PACKAGE_DIR }).toString().trim();
  const out = join(PACKAGE_DIR, 'bench', 'results');
  mkdirSync(out, { recursive: true });
  const file = join(out, `http-${commit}-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(
    file,
    JSON.stringify({ commit, machine: { cpus: cpus().length, model: cpus()[0]?.model }, events: EVENTS, keys: KEYS, rounds: ROUNDS, runs }, null, 2) + '\n',
  );
  console.log(`\nresults: ${file}`);
}
process.exit(0);
