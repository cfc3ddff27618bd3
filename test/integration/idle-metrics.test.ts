import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import pino from 'pino';
import { FlowRunner } from '../../src/flow/run-flow.js';
import { waitForConvergence } from '../../src/demo/row-compare.js';
import { endpoints, pgClient } from '../support/capture.js';
import { SyncFixture } from '../support/fixture.js';
import { flowConfig, startFlow } from '../support/flow.js';
import { waitFor } from '../support/wait.js';

/**
 * What an SRE's alerts read must be true when nothing commits: a joined flow with nothing to do
 * shows its lag and its counters (at zero), and a partition that cannot write shows its lag growing.
 */
describe('metrics of a flow that commits nothing', () => {
  const f = new SyncFixture('idlemetrics');
  const tables = ['customers'];
  let runner: FlowRunner;
  let topic: string;
  let locker: pg.Client;
  type LogRecord = { msg: string; behind?: number; perSecond?: number | null; secondsLeft?: number | null; seconds?: number };
  const logs: LogRecord[] = [];

  const scrape = async () => (await (await fetch(runner.metricsAddress!)).text()).split('\n');
  /** The value of the series with these labels, or undefined when /metrics has no such series. */
  const series = (lines: string[], name: string, labels: Record<string, string>) => {
    const line = lines.find((l) => l.startsWith(`${name}{`) && Object.entries(labels).every(([k, v]) => l.includes(`${k}="${v}"`)));
    return line === undefined ? undefined : Number(line.split(' ').pop());
  };
  const lagOf = (lines: string[]) => [0, 1, 2, 3, 4, 5].map((p) => series(lines, 'trustsync_consumer_lag_messages', { topic, partition: String(p) }));

  const config = () =>
    flowConfig({
      name: f.schema,
      topics: f.flowTables(tables),
      // The source database too: its replication slots are read on the same timer.
      sourceDatabase: endpoints.postgresUrl('trustsync_source'),
      extra: { metrics: { port: 0, lagInterval: '500ms' } },
    });

  beforeAll(async () => {
    await f.open({ demoTables: true });
    await f.source.query(`INSERT INTO ${f.schema}.customers (id, email, name) SELECT g, 'c' || g || '@x', 'C' FROM generate_series(1, 30) g`);
    await f.captureTables(tables, 'json').start();
    topic = f.capture!.topic('customers');
    // A first run applies everything and commits; the run under test then starts with nothing to do.
    const first = await startFlow(config());
    await waitForConvergence(f.source, f.dest, f.pairs(tables));
    await first.stop();
    // Its JSON log records kept, as a log shipper would read them.
    runner = f.runner = new FlowRunner(config(), pino({ level: 'info' }, { write: (line: string) => void logs.push(JSON.parse(line) as LogRecord) }));
    await runner.start();
    locker = await pgClient('trustsync_dest');
  });

  afterAll(async () => {
    await locker?.query('ROLLBACK').catch(() => undefined);
    await locker?.end();
    await f.close();
  });

  it('an idle flow shows every partition’s lag at zero and its counters from zero', async () => {
    await waitFor(async () => lagOf(await scrape()).every((v) => v !== undefined), 'lag series for all six partitions of an idle flow', 30_000);
    const lines = await scrape();
    expect(lagOf(lines)).toEqual([0, 0, 0, 0, 0, 0]);
    for (const [decision, reason] of <[string, string][]>[
      ['received', ''],
      ['applied', 'c'],
      ['applied', 'u'],
      ['applied', 'd'],
      ['skipped', 'duplicate'],
      ['skipped', 'stale'],
    ])
      expect(series(lines, 'trustsync_events_total', { topic, decision, reason }), `${decision}/${reason}`).toBe(0);
    // Node's process metrics under their standard names, as stock dashboards read them.
    expect(lines.some((l) => l.startsWith('process_cpu_seconds_total '))).toBe(true);
    expect(lines.some((l) => l.startsWith('nodejs_heap_size_used_bytes '))).toBe(true);
  });

  it('shows the source’s replication slot as the source itself reports it: streaming, and the WAL it keeps', async () => {
    const slot = f.capture!.connector.config['slot.name'] as string;
    await waitFor(async () => series(await scrape(), 'trustsync_source_slot_active', { slot }) !== undefined, `the slot ${slot} in /metrics`, 30_000);
    const { rows } = await f.source.query<{ active: boolean }>('SELECT active FROM pg_replication_slots WHERE slot_name = $1', [slot]);
    const lines = await scrape();
    expect(series(lines, 'trustsync_source_slot_active', { slot })).toBe(rows[0]!.active ? 1 : 0);
    expect(rows[0]!.active).toBe(true);
    expect(series(lines, 'trustsync_source_slot_retained_wal_bytes', { slot })).toBeGreaterThan(0);
    expect(series(lines, 'trustsync_source_slot_flush_lag_bytes', { slot })).toBeGreaterThanOrEqual(0);
  });

  it('a partition that cannot write shows its lag, and its age growing, without a commit; both fall back once it writes', async () => {
    // The destination table locked: the flow's next write waits, and nothing commits.
    await locker.query('BEGIN');
    await locker.query(`LOCK TABLE ${f.destSchema}.customers IN ACCESS EXCLUSIVE MODE`);
    await f.source.query(`INSERT INTO ${f.schema}.customers (id, email, name) SELECT g, 'c' || g || '@x', 'C' FROM generate_series(101, 105) g`);
    const behind = async () => (lagOf(await scrape()) as number[]).reduce((a, b) => a + b, 0);
    await waitFor(async () => (await behind()) === 5, 'the five blocked changes in the lag gauges', 30_000);
    const age = async () => {
      const lines = await scrape();
      return Math.max(...[0, 1, 2, 3, 4, 5].map((p) => series(lines, 'trustsync_consumer_lag_seconds', { topic, partition: String(p) }) ?? 0));
    };
    const first = await age();
    await new Promise((r) => setTimeout(r, 1500));
    expect(await age()).toBeGreaterThan(first);
    expect(await runner.metrics.total('applied')).toBe(0);
    await locker.query('ROLLBACK');
    await waitForConvergence(f.source, f.dest, f.pairs(tables));
    await waitFor(async () => (await behind()) === 0, 'the lag back at zero once the writes went through', 30_000);
    expect(await age()).toBe(0);
  });

  it('a backlog is told in the JSON log while it lasts, records behind and the pace, then how long catching up took', async () => {
    await locker.query('BEGIN');
    await locker.query(`LOCK TABLE ${f.destSchema}.customers IN ACCESS EXCLUSIVE MODE`);
    await f.source.query(`INSERT INTO ${f.schema}.customers (id, email, name) SELECT g, 'c' || g || '@x', 'C' FROM generate_series(1001, 4000) g`);
    await waitFor(
      async () => logs.some((l) => l.msg.startsWith('catching up: ') && l.behind! >= 3000),
      'a catching-up record for the 3,000 blocked changes',
      30_000,
    );
    await locker.query('ROLLBACK');
    await waitFor(async () => logs.some((l) => /^caught up after \d+ s$/.test(l.msg)), 'the caught-up record once the writes went through', 60_000);
    await waitForConvergence(f.source, f.dest, f.pairs(tables));
    const told = logs.filter((l) => l.msg.startsWith('catching up: '));
    // While the table is locked, the backlog does not shrink: no time left can be told.
    expect(told.length).toBeGreaterThan(0);
    expect(told.some((l) => /records behind, growing by \d+ records\/s$/.test(l.msg) && l.perSecond! < 0 && l.secondsLeft === null)).toBe(true);
    // Once it writes again the backlog shrinks; a sample taken meanwhile tells the time left at that pace.
    for (const l of told.filter((x) => x.perSecond! > 0)) expect(Math.abs(l.secondsLeft! - l.behind! / l.perSecond!)).toBeLessThanOrEqual(1);
  });
});
