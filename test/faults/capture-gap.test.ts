import { afterEach, describe, expect, it } from 'vitest';
import { setTimeout as sleep } from 'node:timers/promises';
import { dropSlot, restoreStack } from '../support/faults.js';
import { trustsync as cli } from '../support/cli.js';
import { FaultScenario } from '../support/scenario.js';

/**
 * The source's replication slot dropped under a running capture: what was committed until a new
 * slot exists is not in the WAL any consumer can read. trustsync finds the gap, takes the source
 * again, and repairs what a snapshot cannot carry, without writing anything older over newer.
 */
describe('a capture gap', () => {
  let s: FaultScenario | undefined;

  afterEach(async () => {
    await restoreStack();
    await s?.close();
    s = undefined;
  });

  it('the replication slot dropped: the gap is reported, a new snapshot and reconcile --repair mend it, nothing newer reverted', async () => {
    s = await new FaultScenario('f_slot').open();
    const file = s.connectorFile();
    const name = s.f.capture!.connector.name;
    const slot = s.f.capture!.connector.config['slot.name']!;

    const stop = await s.writeInBackground();
    await sleep(1500);
    await dropSlot(s.f.capture!);
    // The source keeps changing while nothing captures it. Debezium's task that met the dropped slot
    // waits out its restart backoff (10 s) and so ends after the resnapshot below has stopped it and
    // reset its offsets; when it still holds changes Kafka acknowledged after its last commit, it
    // commits them then, and the old position comes back (resnapshot must reset it again).
    await sleep(1000);

    const status = await cli(['connectors', 'status', '--dir', file]);
    expect(status.status, status.stderr).toBe(1);
    expect(status.stdout).toContain(`GAP: replication slot ${slot} no longer exists`);
    expect(status.stderr).toMatch(
      new RegExp(`capture gap: ${name}: replication slot ${slot} no longer exists; the changes committed after [0-9A-F]+/[0-9A-F]+ were never captured`),
    );
    expect(status.stderr).toContain('connectors resnapshot');

    const again = await cli(['connectors', 'resnapshot', '--dir', file, '--name', name]);
    expect(again.stderr).toContain('snapshot under way, RUNNING');
    expect(again.status).toBe(0);
    const after = await cli(['connectors', 'status', '--dir', file]);
    expect(after.status, `${after.stdout}${after.stderr}`).toBe(0);

    await sleep(1500);
    await stop();
    await s.captureSettled();
    await s.caughtUp();

    // What the gap took: updates and deletes a snapshot cannot bring back.
    const found = await s.reconcile(false);
    const differences = found.tables.flatMap((t) => t.differences);
    expect(differences.length).toBeGreaterThan(0);
    expect(differences.every((d) => d.recommendedAction === 'update-destination' || d.recommendedAction === 'delete-destination')).toBe(true);

    const repaired = await s.reconcile(true);
    expect(repaired.clean).toBe(true);
    expect((await s.reconcile(false)).tables.flatMap((t) => t.differences)).toEqual([]);

    // The stream goes on over the repaired rows, and the destination follows it.
    const more = await s.writeInBackground();
    await sleep(2000);
    await more();
    await s.assertNothingLost();
  });
});
