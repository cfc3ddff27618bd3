import pino from 'pino';
import { validateFlow, type FlowConfig } from '../../src/flow/config.js';
import { FlowRunner } from '../../src/flow/run-flow.js';
import { endpoints } from './capture.js';

export interface FlowSpec {
  name: string;
  topics: { topic: string; table: string }[];
  decoding?: 'json' | 'avro';
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
    },
    destination: { url: endpoints.postgresUrl('trustsync_dest'), tables: spec.topics },
    batch: { maxRows: 500, maxWaitMs: 100 },
    retry: { maxAttempts: 20, initialDelayMs: 50, maxDelayMs: 2000 },
    ...spec.extra,
  };
}

export function flowConfig(spec: FlowSpec): FlowConfig {
  return validateFlow(flowDocument(spec), `${spec.name}.yaml`);
}

/** Runs a flow in this process, against the real stack. */
export async function startFlow(config: FlowConfig): Promise<FlowRunner> {
  const runner = new FlowRunner(config, pino({ level: process.env.TRUSTSYNC_TEST_LOG ?? 'silent' }));
  await runner.start();
  return runner;
}

