import { join } from 'node:path';
import { stackSettings, type StackSettings } from '../../src/stack/settings.js';
import { stackDown, stackUp } from '../../src/stack/stack.js';

/** Ports of the fault suite's stack: the test stack's, moved up by this much. */
const PORT_OFFSET = 100;

/**
 * The fault suite's own stack. Its scenarios kill the broker, Kafka Connect and PostgreSQL, so they
 * never share a stack with the other tests: this one starts fresh (on ports next to the test stack's,
 * with its own state and data folders, the same downloaded artifacts) and is removed afterwards.
 * The environment set here is what the test files (and the flow files they load) read.
 */
export default async function setup(): Promise<() => Promise<void>> {
  const base = stackSettings();
  const env: Record<string, string> = {
    TRUSTSYNC_PG_PORT: String(base.ports.postgres + PORT_OFFSET),
    TRUSTSYNC_MARIADB_PORT: String(base.ports.mariadb + PORT_OFFSET),
    TRUSTSYNC_REGISTRY_PORT: String(base.ports.registry + PORT_OFFSET),
    TRUSTSYNC_KAFKA_PORT: String(base.ports.kafka + PORT_OFFSET),
    TRUSTSYNC_KAFKA_CONTROLLER_PORT: String(base.ports.kafkaController + PORT_OFFSET),
    TRUSTSYNC_KAFKA_SASL_PORT: String(base.ports.kafkaSasl + PORT_OFFSET),
    TRUSTSYNC_KAFKA_TLS_PORT: String(base.ports.kafkaTls + PORT_OFFSET),
    TRUSTSYNC_CONNECT_PORT: String(base.ports.connect + PORT_OFFSET),
    TRUSTSYNC_STATE_DIR: join(base.home, 'fault-stack'),
  };
  Object.assign(process.env, env);
  if (process.env.TRUSTSYNC_PG_DATA) process.env.TRUSTSYNC_PG_DATA = `${process.env.TRUSTSYNC_PG_DATA}-faults`;
  const settings: StackSettings = stackSettings();
  const log = (line: string) => process.stderr.write(`[fault stack] ${line}\n`);
  // Whatever an interrupted earlier run left behind: the scenarios start from a fresh stack.
  await stackDown(settings, true, log);
  const status = await stackUp(settings, log);
  if (!status.healthy) throw new Error(`the fault suite's stack is not healthy: ${JSON.stringify(status.components.filter((c) => c.state !== 'up'))}`);
  return async () => {
    if (!process.env.TRUSTSYNC_KEEP_STACK) await stackDown(settings, true, log);
  };
}
