import { setTimeout as sleep } from 'node:timers/promises';
import { componentPid, type Component } from '../../src/stack/component.js';
import { connect as connectComponent } from '../../src/stack/connect.js';
import { kafka as kafkaComponent } from '../../src/stack/kafka.js';
import { postgres as postgresComponent } from '../../src/stack/postgres.js';
import { registry as registryComponent } from '../../src/stack/registry.js';
import { isAlive } from '../../src/stack/processes.js';
import { stackUp } from '../../src/stack/stack.js';
import { ConnectClient } from '../../src/stack/connectors.js';
import { endpoints, pgClient, settings, type SourceCapture } from './capture.js';

/**
 * One vocabulary for breaking the fault suite's stack on purpose, and for bringing it back. Only the
 * fault suite uses it: it runs on a stack of its own (test/support/fault-stack.ts).
 */
function pidOf(c: Component): number {
  const pid = componentPid(settings, c);
  if (pid === undefined) throw new Error(`${c.name} is not running`);
  return pid;
}

async function killAndWait(c: Component, signal: NodeJS.Signals, timeoutMs = 60_000): Promise<void> {
  const pid = pidOf(c);
  process.kill(pid, signal);
  const deadline = Date.now() + timeoutMs;
  while (isAlive(pid)) {
    if (Date.now() > deadline) throw new Error(`${c.name} (pid ${pid}) was still alive ${timeoutMs / 1000}s after ${signal}`);
    await sleep(100);
  }
}

/** SIGKILL Kafka Connect, and with it Debezium's task, mid-stream. */
export const killConnect = () => killAndWait(connectComponent, 'SIGKILL');

/** SIGKILL the broker: no clean shutdown, the log is recovered on restart. */
export const killBroker = () => killAndWait(kafkaComponent, 'SIGKILL');

/** Freezes the broker (SIGSTOP): connections hang rather than fail. */
export const pauseBroker = (): void => void process.kill(pidOf(kafkaComponent), 'SIGSTOP');
export const resumeBroker = (): void => void process.kill(pidOf(kafkaComponent), 'SIGCONT');

/** PostgreSQL's immediate shutdown (SIGQUIT): every backend dies at once, mid-transaction, and recovery runs from the WAL on restart. */
export const crashPostgres = () => killAndWait(postgresComponent, 'SIGQUIT');

/** The schema registry gone (its process killed). */
export const killRegistry = () => killAndWait(registryComponent, 'SIGKILL');

/**
 * The capture's replication slot dropped while Debezium streams from it, as a person (or
 * max_slot_wal_keep_size) might: an active slot cannot be dropped, so its walsender is ended first,
 * again and again until the drop wins the race with Debezium's reconnect.
 */
export async function dropSlot(capture: SourceCapture): Promise<void> {
  const slot = capture.connector.config['slot.name']!;
  const db = await pgClient();
  try {
    for (let i = 0; i < 100; i++) {
      await db.query('SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL', [slot]);
      const dropped = await db.query('SELECT pg_drop_replication_slot($1)', [slot]).then(
        () => true,
        () => false,
      );
      const { rowCount } = await db.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [slot]);
      if (dropped || rowCount === 0) return;
      await sleep(100);
    }
    throw new Error(`replication slot ${slot} could not be dropped`);
  } finally {
    await db.end();
  }
}

/** Starts whatever is down again and waits until every component serves. */
export async function restoreStack(): Promise<void> {
  const status = await stackUp(settings, () => undefined);
  if (!status.healthy) throw new Error(`the stack did not recover: ${JSON.stringify(status.components.filter((c) => c.state !== 'up'))}`);
}

/** Waits for a capture's connector and task to run again, restarting them if a fault left them FAILED. */
export async function recoverCapture(capture: SourceCapture, timeoutMs = 120_000): Promise<void> {
  const connect = new ConnectClient(endpoints.connectUrl);
  const name = capture.connector.name;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const st = await connect.status(name).catch(() => undefined);
    if (st?.connector.state === 'RUNNING' && st.tasks.length > 0 && st.tasks.every((t) => t.state === 'RUNNING')) return;
    if (st && [st.connector, ...st.tasks].some((t) => t.state === 'FAILED')) {
      await fetch(`${endpoints.connectUrl}/connectors/${encodeURIComponent(name)}/restart?includeTasks=true&onlyFailed=true`, { method: 'POST' }).catch(
        () => undefined,
      );
    }
    if (Date.now() > deadline) throw new Error(`connector ${name} did not run again within ${timeoutMs / 1000}s: ${JSON.stringify(st)}`);
    await sleep(1000);
  }
}
