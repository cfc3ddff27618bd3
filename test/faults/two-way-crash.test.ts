import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type pg from 'pg';
import type { Admin } from 'kafkajs';
import { loadSyncFlows, readCustomers, waitForSyncQuiet } from '../../src/demo/sync.js';
import type { FlowConfig } from '../../src/flow/config.js';
import { PACKAGE_DIR } from '../../src/stack/settings.js';
import { kafkaClient, uniqueName, type SourceCapture } from '../support/capture.js';
import { spawnRun } from '../support/flow.js';
import { closeTwoSides, editBothSidesAtRandom, openTwoSides, policyMismatches, reviewedStatus, writeCounts, type TwoSides } from '../support/two-way.js';

/**
 * Scenario 15: the app ⇄ crm sync run as users run it (two `trustsync run` processes with the
 * shipped flow files), users editing both sides at random moments, and the app → crm process
 * killed with SIGKILL in the middle, then started again. Both sides must still end where the
 * policy says, with no write sent back and forth.
 */
describe('a two-way sync whose consumer is killed mid-stream', () => {
  const appSchema = uniqueName('tw_app');
  const crmSchema = uniqueName('tw_crm');
  const dir = mkdtempSync(join(tmpdir(), 'trustsync-two-way-'));
  let app: pg.Client;
  let crm: pg.Client;
  let admin: Admin;
  let captures: SourceCapture[] = [];
  let configs: FlowConfig[];
  const running = new Map<string, ChildProcess>();
  let genuineEdits = 0;
  const appTable = `${appSchema}.customers`;
  const crmTable = `${crmSchema}.customers`;
  const sides = (): TwoSides => ({
    app,
    crm,
    appTable,
    crmTable,
    edit: async (db, sql, params = []) => {
      const changed = (await db.query(sql, params)).rowCount ?? 0;
      genuineEdits += changed;
      return changed;
    },
  });

  /** One direction's `trustsync run`, with the shipped flow file; its metrics on a port of its own. */
  const startDirection = (file: 'app-to-crm' | 'crm-to-app', metricsPort: number) => {
    const child = spawnRun(join(PACKAGE_DIR, 'flows', `${file}.yaml`), join(dir, `${file}.log`), {
      ...process.env,
      TRUSTSYNC_SYNC_APP: appSchema,
      TRUSTSYNC_SYNC_CRM: crmSchema,
      [`TRUSTSYNC_${file.toUpperCase().replaceAll('-', '_')}_METRICS_PORT`]: String(metricsPort),
    });
    running.set(file, child);
    return child;
  };
  const stop = async (file: string, signal: NodeJS.Signals) => {
    const child = running.get(file);
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill(signal);
    await exited;
    running.delete(file);
  };
  const quiesce = () =>
    waitForSyncQuiet(admin, configs, async () => JSON.stringify([await readCustomers(app, appSchema), await readCustomers(crm, crmSchema)]), 3000, 240_000);

  beforeAll(async () => {
    ({ app, crm, captures } = await openTwoSides(appSchema, crmSchema, sides().edit));
    configs = loadSyncFlows(appSchema, crmSchema);
    admin = kafkaClient().admin();
    await admin.connect();
  });

  afterAll(async () => {
    for (const file of [...running.keys()]) await stop(file, 'SIGKILL');
    await admin?.disconnect();
    await closeTwoSides(appSchema, crmSchema, { app, crm, captures });
  });

  it('converges as the policy says, with writes bounded by the edits and every write recognised when it comes back', async () => {
    startDirection('app-to-crm', 9565);
    startDirection('crm-to-app', 9566);
    await quiesce();
    expect(await readCustomers(crm, crmSchema)).toEqual(await readCustomers(app, appSchema));

    const edits = await editBothSidesAtRandom(sides(), 20261129, 80, async (i) => {
      if (i === 30) await stop('app-to-crm', 'SIGKILL');
      if (i === 50) startDirection('app-to-crm', 9565);
    });
    await quiesce();
    const inRange = (rows: Awaited<ReturnType<typeof readCustomers>>) => rows.filter((r) => r.id >= 12);
    const [crmRows, appRows] = [inRange(await readCustomers(crm, crmSchema)), inRange(await readCustomers(app, appSchema))];
    expect(crmRows).toEqual(appRows);
    const statusReviewed = await reviewedStatus(crm, crmTable);
    expect(policyMismatches(appRows, edits, statusReviewed)).toEqual([]);
    expect(policyMismatches(crmRows, edits, statusReviewed)).toEqual([]);
    const w = await writeCounts(sides());
    expect(w.intoApp + w.intoCrm).toBeLessThanOrEqual(genuineEdits);
    expect(w.echoedFromApp).toBe(w.intoApp);
    expect(w.echoedFromCrm).toBe(w.intoCrm);
  });
});
