import pg from 'pg';
import pino from 'pino';
import { stackEndpoints, stackSettings } from '../src/stack/settings.js';
import { stackUp } from '../src/stack/stack.js';
import { validateFlow } from '../src/flow/config.js';
import { reconcileFlow } from '../src/reconcile/reconcile.js';

/**
 * Reconcile at scale: two tables of `--rows` rows (default 1,000,000) on the local stack's
 * PostgreSQL, twenty injected differences, one reconcile. Prints rows compared, differences found,
 * time and memory; exits 1 unless exactly the injected differences are found with the process's
 * memory flat (it must not load the tables into Node).
 */
const rowsArg = process.argv.indexOf('--rows');
const rows = rowsArg > 0 ? Number(process.argv[rowsArg + 1]) : 1_000_000;
const maxGrowthMb = 100;

const s = stackSettings();
const status = await stackUp(s, () => undefined);
if (!status.healthy) throw new Error('the local stack is not healthy; see `trustsync stack status`');
const e = stackEndpoints(s);
const source = new pg.Client(e.postgresUrl('trustsync_source'));
const dest = new pg.Client(e.postgresUrl('trustsync_dest'));
await source.connect();
await dest.connect();
const table = `CREATE TABLE bench_reconcile.items (id bigint PRIMARY KEY, sku text NOT NULL, qty integer NOT NULL, price numeric(12,2) NOT NULL, attrs jsonb NOT NULL, updated_at timestamptz NOT NULL)`;
const fill = `INSERT INTO bench_reconcile.items SELECT g, 'SKU-' || g, g % 1000, (g % 10000) / 100.0, jsonb_build_object('color', g % 7, 'size', g % 5), timestamptz '2026-01-01' + g * interval '1 second' FROM generate_series(1, ${rows}) g`;
try {
  process.stdout.write(`filling two tables with ${rows.toLocaleString('en')} rows each …\n`);
  for (const db of [source, dest]) {
    await db.query('DROP SCHEMA IF EXISTS bench_reconcile CASCADE; CREATE SCHEMA bench_reconcile');
    await db.query(table);
    await db.query(fill);
    await db.query('ANALYZE bench_reconcile.items');
  }
  // Twenty differences: ten altered fields, five rows gone, five stray rows.
  await dest.query(`UPDATE bench_reconcile.items SET qty = qty + 1 WHERE id IN (SELECT g * ${Math.floor(rows / 11)} FROM generate_series(1, 10) g)`);
  await dest.query(`DELETE FROM bench_reconcile.items WHERE id IN (SELECT g * ${Math.floor(rows / 7)} + 1 FROM generate_series(1, 5) g)`);
  await dest.query(`INSERT INTO bench_reconcile.items SELECT ${rows} + g, 'STRAY', 0, 0, '{}', now() FROM generate_series(1, 5) g`);

  const config = validateFlow(
    {
      flow: 'bench-reconcile',
      source: { brokers: e.kafkaBrokers, decoding: 'json', database: e.postgresUrl('trustsync_source') },
      destination: {
        url: e.postgresUrl('trustsync_dest'),
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
  if (growthMb > maxGrowthMb) {
    process.stdout.write('FAIL: memory grew with the table size\n');
    process.exitCode = 1;
  }
} finally {
  for (const db of [source, dest]) {
    await db.query('DROP SCHEMA IF EXISTS bench_reconcile CASCADE').catch(() => undefined);
    await db.end();
  }
}
