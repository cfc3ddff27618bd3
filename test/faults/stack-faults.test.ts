import { afterEach, describe, expect, it } from 'vitest';
import { setTimeout as sleep } from 'node:timers/promises';
import { kafkaClient } from '../support/capture.js';
import { crashPostgres, killBroker, killConnect, pauseBroker, recoverCapture, restoreStack, resumeBroker } from '../support/faults.js';
import { FaultScenario } from '../support/scenario.js';
import { waitFor } from '../support/wait.js';

/**
 * Faults injected on the real stack while the source keeps changing. Each scenario has its own
 * schema, connector, slot, topics, consumer group and destination; after recovery the destination
 * equals the source row by row, nothing was applied over a newer change, and every skip, retry and
 * dead letter counted is on record.
 */
describe('the stack broken mid-stream, nothing lost', () => {
  let s: FaultScenario | undefined;

  afterEach(async () => {
    // Whatever a failed scenario left broken is mended before the next one starts.
    try {
      resumeBroker();
    } catch {
      // not running: restoreStack starts it
    }
    await restoreStack();
    await s?.close();
    s = undefined;
  });

  /** A fault while the source changes: inject, keep writing through it, recover, keep writing a little. */
  const throughFault = async (scenario: FaultScenario, inject: () => Promise<void>, recover: () => Promise<void>) => {
    const stop = await scenario.writeInBackground();
    await sleep(1500);
    await inject();
    await sleep(3000);
    await recover();
    await sleep(1500);
    await stop();
  };

  it('Kafka Connect killed with SIGKILL, then restarted: Debezium resumes from its last committed offset', async () => {
    s = await new FaultScenario('f_connect').open();
    const scenario = s;
    await throughFault(scenario, killConnect, async () => {
      await restoreStack();
      await recoverCapture(scenario.f.capture!);
    });
    const { counted } = await s.assertNothingLost();
    // Debezium sent again what it had sent since its last committed offset (read from the topics
    // themselves): each re-sent record was skipped, and the destination never took one a second time.
    const resent = await s.resentRecords();
    expect(resent).toBeGreaterThan(0);
    expect(counted.duplicate! + counted.stale! + counted.superseded!).toBeGreaterThanOrEqual(resent);
    expect(await s.unchangedWrites()).toEqual([]);
  });

  it("Kafka Connect killed with SIGKILL during Debezium's initial snapshot: the snapshot is taken again, nothing lost", async () => {
    const rows = 300_000;
    s = await new FaultScenario('f_snapshot').openUncaptured();
    await s.insertCustomers(1000, rows);
    await s.startCapture();
    // Under way, far from done: a few thousand of the snapshot's records are in the topics.
    const deadline = Date.now() + 120_000;
    while ((await s.capturedRecords()) < 2000) {
      if (Date.now() > deadline) throw new Error('the snapshot did not start within 120 s');
      await sleep(50);
    }
    await killConnect();
    expect(await s.capturedRecords()).toBeLessThan(rows);
    await restoreStack();
    await recoverCapture(s.f.capture!);
    await s.startFlow();
    const stop = await s.writeInBackground();
    await sleep(3000);
    await stop();
    await s.assertNothingLost();
  });

  it('the broker frozen with SIGSTOP for ten seconds, then resumed: the flow and Debezium ride it out', async () => {
    s = await new FaultScenario('f_pause').open();
    const scenario = s;
    let writesAtResume = 0;
    await throughFault(
      s,
      async () => {
        pauseBroker();
        await sleep(7000);
      },
      async () => {
        resumeBroker();
        writesAtResume = await scenario.destinationWrites();
      },
    );
    await s.assertNothingLost();
    expect(await s.unchangedWrites()).toEqual([]);
    // The member is back in the group: it consumed what the source changed after the resume (rejoining
    // first when its session expired during the freeze, which depends on the timing), and runs on.
    const joins = (await s.f.runner!.metrics.groupJoins.get()).values.reduce((n, v) => n + v.value, 0);
    expect(joins).toBeGreaterThanOrEqual(1);
    expect(s.f.runner!.state).toBe('running');
    expect(await s.destinationWrites()).toBeGreaterThan(writesAtResume);
  });

  it('the broker killed with SIGKILL, then restarted: its log is recovered and everyone reconnects', async () => {
    s = await new FaultScenario('f_broker').open();
    const scenario = s;
    await throughFault(scenario, killBroker, async () => {
      await restoreStack();
      // Connect's task, blocked on the dead broker, does not stop ("failed to properly shut down …
      // may be consuming external resources") and keeps the replication slot: its successor cannot
      // stream until the worker is restarted, as Connect's own message says to do.
      await killConnect();
      await restoreStack();
      await recoverCapture(scenario.f.capture!);
    });
    await s.assertNothingLost();
    expect(await s.unchangedWrites()).toEqual([]);
  });

  it('PostgreSQL shut down immediately mid-batch, then restarted: the half-written batch is retried, never half-applied', async () => {
    s = await new FaultScenario('f_pg').open();
    const scenario = s;
    await throughFault(scenario, crashPostgres, async () => {
      await restoreStack();
      await scenario.reconnect();
      await recoverCapture(scenario.f.capture!);
    });
    // Should PostgreSQL die between making a batch's COMMIT durable and acknowledging it, the retry
    // leaves out what the first attempt recorded: the history still matches the counters.
    const { counted } = await s.assertNothingLost();
    // The destination was gone for a while: the flow retried (and each retry is on record).
    expect(counted.retried).toBeGreaterThan(0);
  });

  it('the consumer group reset to the beginning: everything is read again and skipped, nothing regresses', async () => {
    s = await new FaultScenario('f_reset').open({ rows: 150 });
    await s.stopFlow();
    const writesBefore = await s.destinationWrites();
    const admin = kafkaClient().admin();
    await admin.connect();
    for (const t of ['customers', 'orders']) await admin.resetOffsets({ groupId: `trustsync-${s.schema}`, topic: s.f.capture!.topic(t), earliest: true });
    await admin.disconnect();
    const total = await s.capturedRecords();
    const runner = await s.startFlow();
    await waitFor(
      async () => (await runner.metrics.total('received')) >= total,
      `the flow to receive all ${total} records again after the group reset`,
      180_000,
    );
    await s.assertNothingLost();
    // Every replayed change is older than or the same as what the destination holds: the destination's
    // own account of writes did not grow by one.
    expect(await s.destinationWrites()).toBe(writesBefore);
    expect(await runner.metrics.total('applied')).toBe(0);
    expect(await runner.metrics.total('skipped')).toBeGreaterThan(0);
  });

  it('a 100,000-row source transaction applies whole, and an aborted one leaves no trace', async () => {
    s = await new FaultScenario('f_bigtx').open();
    const { source, schema, dest, destSchema } = s;
    await s.insertCustomers(1_000_000, 100_000);
    await source.query('BEGIN');
    await source.query(
      `INSERT INTO ${schema}.customers (id, email, name) SELECT g, 'never' || g || '@example.com', 'Never ' || g FROM generate_series(2000000, 2000999) g`,
    );
    await source.query('ROLLBACK');
    await s.assertNothingLost();
    const count = async (where: string) => Number((await dest.query(`SELECT count(*) AS n FROM ${destSchema}.customers WHERE ${where}`)).rows[0].n);
    expect(await count('id BETWEEN 1000000 AND 1099999')).toBe(100_000);
    expect(await count('id >= 2000000')).toBe(0);
    // Not even for a moment: the destination's own account of writes never saw one of the aborted rows.
    const aborted = await dest.query(`SELECT count(*)::int AS n FROM ${destSchema}.customer_writes WHERE id >= 2000000`);
    expect(aborted.rows[0].n).toBe(0);
  });
});
