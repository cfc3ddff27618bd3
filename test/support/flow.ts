import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { validateFlow, type FlowConfig } from '../../src/flow/config.js';
import { FlowRunner } from '../../src/flow/run-flow.js';
import { PACKAGE_DIR } from '../../src/stack/settings.js';
import { endpoints } from './capture.js';

export interface FlowSpec {
  name: string;
  topics: { topic: string; table: string }[];
  decoding?: 'json' | 'avro';
  /** The source system's database (source.database), which reconcile and canaries use. */
  sourceDatabase?: string;
  /** Where the flow writes (the stack's PostgreSQL destination database when absent). */
  destinationUrl?: string;
  extra?: Record<string, unknown>;
}

/** A flow document as a user would write it, for this test's own topics, group, tables and DLQ. */
export function flowDocument(spec: FlowSpec): Record<string, unknown> {
  return {
    flow: spec.name,
    source: {
      brokers: endpoints.kafkaBrokers,
      decoding: spec.decoding ?? 'json',
      ...(spec.decoding === 'avro' ? { registryUrl: endpoints.registryCcompatUrl } : {}),
      ...(spec.sourceDatabase ? { database: spec.sourceDatabase } : {}),
    },
    destination: { url: spec.destinationUrl ?? endpoints.postgresUrl('trustsync_dest'), tables: spec.topics },
    batch: { maxRows: 500, maxWaitMs: 100 },
    // Outlasts an outage the fault suite makes: a registry restarted on a slow machine took longer than 20 tries.
    retry: { maxAttempts: 40, initialDelayMs: 50, maxDelayMs: 2000 },
    ...spec.extra,
  };
}

export function flowConfig(spec: FlowSpec): FlowConfig {
  return validateFlow(flowDocument(spec), `${spec.name}.yaml`);
}

/** Runs a flow in this process, against the real stack. */
export async function startFlow(config: FlowConfig): Promise<FlowRunner> {
  // TRUSTSYNC_TEST_LOG sets the level; TRUSTSYNC_TEST_LOG_FILE, where the lines go (standard output otherwise).
  const file = process.env.TRUSTSYNC_TEST_LOG_FILE;
  const runner = new FlowRunner(
    config,
    pino({ level: process.env.TRUSTSYNC_TEST_LOG ?? 'silent' }, file ? pino.destination({ dest: file, append: true, sync: true }) : undefined),
  );
  await runner.start();
  return runner;
}

/** `trustsync run` as a user runs it, in a process of its own; what it prints is appended to `logFile`. */
export function spawnRun(configFile: string, logFile: string, env: NodeJS.ProcessEnv = process.env): ChildProcess {
  const child = spawn(process.execPath, [join(PACKAGE_DIR, 'bin', 'trustsync.js'), 'run', '--config', configFile], { stdio: ['ignore', 'pipe', 'pipe'], env });
  const log = createWriteStream(logFile, { flags: 'a' });
  child.stdout!.pipe(log);
  child.stderr!.pipe(log);
  return child;
}
