import { afterEach, describe, expect, it } from 'vitest';
import { setTimeout as sleep } from 'node:timers/promises';
import { runWorkload } from '../../src/demo/workload.js';
import { killRegistry, restoreStack } from '../support/faults.js';
import { FaultScenario } from '../support/scenario.js';

/**
 * Outages that last: the registry gone while Avro records wait, the flow down while hundreds of
 * thousands of changes pile up.
 */
describe('outages, each with nothing lost', () => {
  let s: FaultScenario | undefined;

  afterEach(async () => {
    await restoreStack();
    await s?.close();
    s = undefined;
  });

  it('the schema registry down: trustsync waits and retries, dead-letters nothing, and catches up once it is back', async () => {
    s = await new FaultScenario('f_registry', 'avro').open();
    await s.stopFlow();
    await runWorkload(s.source, s.schema, 120, 99);
    await s.captureSettled();
    await killRegistry();
    // A new process knows no schema yet: every record needs the registry.
    const runner = await s.startFlow();
    await sleep(8000);
    expect(await runner.metrics.total('applied')).toBe(0);
    expect(await runner.metrics.total('dead_lettered')).toBe(0);
    expect((await runner.metrics.retries.get()).values.reduce((n, v) => n + v.value, 0)).toBeGreaterThan(0);
    await restoreStack();
    // A member blocked past its session is dropped from the group: its writes land, its commits are
    // refused, and once it rejoins it reads them again as duplicates, each counted and on record.
    const { counted } = await s.assertNothingLost();
    expect(counted.deadLettered).toBe(0);
  });

  it('a long outage: the flow down while 200,000 changes pile up, then it catches up', async () => {
    s = await new FaultScenario('f_outage').open();
    await s.stopFlow();
    for (let i = 0; i < 10; i++) await s.insertCustomers(1_000_000 + i * 10_000, 10_000);
    for (let i = 0; i < 10; i++) {
      await s.source.query(`UPDATE ${s.schema}.customers SET tier = 'gold', balance = balance + 1 WHERE id >= $1 AND id < $2`, [
        1_000_000 + i * 10_000,
        1_000_000 + (i + 1) * 10_000,
      ]);
    }
    const behind = await s.captureSettled();
    expect(behind).toBeGreaterThan(200_000);
    const runner = await s.startFlow();
    await s.assertNothingLost();
    // The first runner read the start; this one read everything after it.
    expect(await runner.metrics.total('received')).toBeGreaterThanOrEqual(200_000);
  });
});
