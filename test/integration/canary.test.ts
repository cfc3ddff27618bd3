import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { runCanary } from '../../src/observe/canary.js';
import { canaryTableSql } from '../../src/sink/postgres/canary-sql.js';
import { validateFlow, type FlowConfig } from '../../src/flow/config.js';
import { PACKAGE_DIR } from '../../src/stack/settings.js';
import { endpoints } from '../support/capture.js';
import { SyncFixture } from '../support/fixture.js';
import { flowDocument, startFlow } from '../support/flow.js';

/** Canaries go the whole way — source, Debezium, Kafka, trustsync, destination — and are timed there. */
describe('canaries', () => {
  const f = new SyncFixture('canary');
  const dir = mkdtempSync(join(tmpdir(), 'trustsync-canary-'));
  const flowFile = join(dir, 'flow.yaml');
  let config: FlowConfig;

  beforeAll(async () => {
    await f.open();
    await f.source.query(canaryTableSql({ schema: f.schema, table: 'trustsync_canary' }));
    await f.captureTables(['trustsync_canary'], 'json').start();
    const full = {
      ...flowDocument({ name: f.schema, topics: f.flowTables(['trustsync_canary']), sourceDatabase: endpoints.postgresUrl('trustsync_source') }),
      canary: { sourceTable: `${f.schema}.trustsync_canary`, table: `${f.destSchema}.trustsync_canary`, interval: '1s' },
    };
    writeFileSync(flowFile, stringify(full));
    config = validateFlow(full, flowFile);
    f.runner = await startFlow(config);
  });

  afterAll(() => f.close());

  it('arrive whole, with their end-to-end latency, and the run is on record', async () => {
    const r = await runCanary(config, 3, 60_000);
    expect(r).toMatchObject({ sent: 3, arrived: 3, intact: 3, missing: [], damaged: [] });
    for (const l of r.latencies) {
      expect(l).toBeGreaterThan(0);
      expect(l).toBeLessThan(60);
    }
    const history = await f.dest.query(`SELECT reason FROM trustsync.history WHERE target = $1 AND decision = 'canary'`, [`${f.destSchema}.trustsync_canary`]);
    expect(history.rows[0].reason).toMatch(/^3\/3 canaries arrived, 3 intact; latency p50 [\d.]+ s/);
  });

  it('are sent by trustsync run on its interval and counted in its metrics', async () => {
    const deadline = Date.now() + 30_000;
    const intact = async () => (await f.runner!.metrics.canaries.get()).values.find((v) => v.labels.result === 'intact')?.value ?? 0;
    while ((await intact()) < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 250));
    expect(await intact()).toBeGreaterThanOrEqual(2);
    expect(
      (await f.runner!.metrics.canaryLatency.get()).values.find((v) => v.metricName === 'trustsync_canary_latency_seconds_count')!.value,
    ).toBeGreaterThanOrEqual(2);
  });

  it('trustsync canary exits 0 when every canary arrived intact', async () => {
    // Not spawnSync: the flow runs in this process and must keep consuming meanwhile.
    const child = spawn(process.execPath, [join(PACKAGE_DIR, 'bin', 'trustsync.js'), 'canary', '--config', flowFile, '--count', '2']);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const code = await new Promise((r) => child.once('exit', r));
    expect(stderr).toBe('');
    expect(stdout).toMatch(/^2\/2 canaries arrived, 2 intact/);
    expect(code).toBe(0);
  });
});
