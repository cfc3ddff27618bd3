import { mkdirSync, writeFileSync } from 'node:fs';
import mariadb from 'mariadb';
import pg from 'pg';
import pino from 'pino';
import { stackEndpoints, stackSettings } from '../src/stack/settings.js';
import { stackUp } from '../src/stack/stack.js';
import { validateFlow } from '../src/flow/config.js';
import { reconcileFlow } from '../src/reconcile/reconcile.js';

/**
 * Reconcile at scale: two tables of `--rows` rows (default 1,000,000), the source on the local
 * stack's PostgreSQL, the destination there too or (`--to mariadb`) on its MariaDB, twenty injected
 * differences, one reconcile. Prints rows compared, differences found,
 * time and memory; exits 1 unless exactly the injected differences are found with the process's
 * memory flat (it must not load the tables into Node).
 */
const rowsArg = process.argv.indexOf('--rows');
const rows = rowsArg > 0 ? Number(process.argv[rowsArg + 1]) : 1_000_000;
const maxGrowthMb = 100;
const to = process.argv.includes('--to') ? process.argv[process.argv.indexOf('--to') + 1] : 'postgres';
if (to !== 'postgres' && to !== 'mariadb') throw new Error(`--to ${to}: postgres or mariadb`);

const s = stackSettings();
const status = await stackUp(s, () => undefined);
if (!status.healthy) throw new Error('the local stack is not healthy; see `trustsync stack status`');
const e = stackEndpoints(s);
const source = new pg.Client(e.postgresUrl('trustsync_source'));
const dest = new pg.Client(e.postgresUrl('trustsync_dest'));
await source.connect();
await dest.connect();
const maria = mariadb.createPool({ host: s.host, port: s.ports.mariadb, user: 'root', connectionLimit: 1, multipleStatements: true });
const table = `CREATE TABLE bench_reconcile.items (id bigint PRIMARY KEY, sku text NOT NULL, qty integer NOT NULL, price numeric(12,2) NOT NULL, attrs jsonb NOT NULL, updated_at timestamptz NOT NULL)`;
const fill = `INSERT INTO bench_reconcile.items SELECT g, 'SKU-' || g, g % 1000, (g % 10000) / 100.0, jsonb_build_object('color', g % 7, 'size', g % 5), timestamptz '2026-01-01 00:00:00+00' + g * interval '1 second' FROM generate_series(1, ${rows}) g`;
/** The same rows in MariaDB (the JSON text as PostgreSQL's jsonb writes it, as Debezium would carry it). */
const mariadbTable = `CREATE TABLE bench_reconcile.items (id BIGINT PRIMARY KEY, sku VARCHAR(64) NOT NULL, qty INT NOT NULL, price DECIMAL(12,2) NOT NULL, attrs JSON NOT NULL, updated_at DATETIME(6) NOT NULL)`;
const mariadbFill = `INSERT INTO bench_reconcile.items SELECT seq, CONCAT('SKU-', seq), seq % 1000, (seq % 10000) / 100, CONCAT('{"size": ', seq % 5, ', "color": ', seq % 7, '}'), TIMESTAMP '2026-01-01 00:00:00' + INTERVAL seq SECOND FROM bench_reconcile.seq_1_to_${rows}`;
/** The twenty differences, in the destination's SQL. */
const drift = {
  postgres: [
    `UPDATE bench_reconcile.items SET qty = qty + 1 WHERE id IN (SELECT g * ${Math.floor(rows / 11)} FROM generate_series(1, 10) g)`,
    `DELETE FROM bench_reconcile.items WHERE id IN (SELECT g * ${Math.floor(rows / 7)} + 1 FROM generate_series(1, 5) g)`,
    `INSERT INTO bench_reconcile.items SELECT ${rows} + g, 'STRAY', 0, 0, '{}', now() FROM generate_series(1, 5) g`,
  ],
  mariadb: [
    `UPDATE bench_reconcile.items SET qty = qty + 1 WHERE id IN (SELECT seq * ${Math.floor(rows / 11)} FROM bench_reconcile.seq_1_to_10)`,
    `DELETE FROM bench_reconcile.items WHERE id IN (SELECT seq * ${Math.floor(rows / 7)} + 1 FROM bench_reconcile.seq_1_to_5)`,
    `INSERT INTO bench_reconcile.items SELECT ${rows} + seq, 'STRAY', 0, 0, '{}', now() FROM bench_reconcile.seq_1_to_5`,
  ],
};
try {
  process.stdout.write(`filling two tables with ${rows.toLocaleString('en')} rows each (destination: ${to}) …\n`);
  for (const db of to === 'postgres' ? [source, dest] : [source]) {
    await db.query('DROP SCHEMA IF EXISTS bench_reconcile CASCADE; CREATE SCHEMA bench_reconcile');
    await db.query(table);
    await db.query(fill);
    await db.query('ANALYZE bench_reconcile.items');
  }
  if (to === 'mariadb') {
    await maria.query('DROP DATABASE IF EXISTS bench_reconcile; CREATE DATABASE bench_reconcile');
    await maria.query(mariadbTable);
    await maria.query(mariadbFill);
    await maria.query('ANALYZE TABLE bench_reconcile.items');
  }
  // Twenty differences: ten altered fields, five rows gone, five stray rows.
  for (const statement of drift[to]) await (to === 'postgres' ? dest.query(statement) : maria.query(statement));

  const config = validateFlow(
    {
      flow: 'bench-reconcile',
      source: { brokers: e.kafkaBrokers, decoding: 'json', database: e.postgresUrl('trustsync_source') },
      destination: {
        url: to === 'postgres' ? e.postgresUrl('trustsync_dest') : e.mariadbUrl('bench_reconcile'),
        tables: [{ topic: 'bench.bench_reconcile.items', table: 'bench_reconcile.items', createIfMissing: false }],
      },
    },
    'bench-reconcile.yaml',
  );
  global.gc?.();
  const rssBefore = process.memoryUsage().rss;
  let peak = rssBefore;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 50);
  const started = process.hrtime.bigint();
  const report = await reconcileFlow(config, { buckets: 64, settleMs: 0, repair: false, progress: () => undefined, log: pino({ level: 'warn' }) });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  clearInterval(sampler);
  const t = report.tables[0]!;
  const growthMb = (peak - rssBefore) / 2 ** 20;
  const kinds = t.differences.reduce<Record<string, number>>((n, d) => ({ ...n, [d.kind]: (n[d.kind] ?? 0) + 1 }), {});
  process.stdout.write(
    [
      `reconcile of ${t.source} → ${t.destination}`,
      `  rows compared        ${(t.rows.source + t.rows.destination).toLocaleString('en')} (${t.rows.source.toLocaleString('en')} source, ${t.rows.destination.toLocaleString('en')} destination)`,
      `  buckets              ${t.buckets}, ${t.mismatchedBuckets} differing (only their rows were read)`,
      `  differences          ${t.differences.length} (${Object.entries(kinds)
        .map(([k, n]) => `${n} ${k}`)
        .join(', ')}), 20 injected`,
      `  time                 ${seconds.toFixed(1)} s (${Math.round((t.rows.source + t.rows.destination) / seconds).toLocaleString('en')} rows/s)`,
      `  memory (RSS)         ${(rssBefore / 2 ** 20).toFixed(0)} MB before, ${(peak / 2 ** 20).toFixed(0)} MB peak: +${growthMb.toFixed(1)} MB (limit +${maxGrowthMb} MB)`,
      '',
    ].join('\n'),
  );
  if (t.differences.length !== 20 || kinds.field !== 10 || kinds.missing !== 5 || kinds.extra !== 5) {
    process.stdout.write('FAIL: not exactly the injected differences\n');
    process.exitCode = 1;
  }
  if (process.argv.includes('--json')) {
    mkdirSync('bench/results', { recursive: true });
    const file = `bench/results/reconcile-${to}-${new Date().toISOString().replace(/[:.]/g, '-')}.json`;
    const result = {
      to,
      rows,
      seconds,
      rowsPerSecond: (t.rows.source + t.rows.destination) / seconds,
      buckets: t.buckets,
      mismatchedBuckets: t.mismatchedBuckets,
      differences: kinds,
      rssBeforeMb: rssBefore / 2 ** 20,
      rssPeakMb: peak / 2 ** 20,
    };
    writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
    process.stdout.write(`results: ${file}\n`);
  }
  if (growthMb > maxGrowthMb) {
    process.stdout.write('FAIL: memory grew with the table size\n');
    process.exitCode = 1;
  }
} finally {
  for (const db of [source, dest]) {
    await db.query('DROP SCHEMA IF EXISTS bench_reconcile CASCADE').catch(() => undefined);
    await db.end();
  }
  await maria.query('DROP DATABASE IF EXISTS bench_reconcile').catch(() => undefined);
  await maria.end();
}
