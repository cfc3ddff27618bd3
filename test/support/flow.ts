import type pg from 'pg';
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

export interface TableDiff {
  missing: string[];
  extra: string[];
  wrong: string[];
}

/** Row-by-row comparison by primary key `id` (both tables have the same columns in the same order). */
export async function compareTables(source: pg.Client, dest: pg.Client, sourceTable: string, destTable: string): Promise<TableDiff> {
  const read = async (c: pg.Client, t: string) =>
    new Map((await c.query<{ id: string; h: string }>(`SELECT id::text AS id, md5(t::text) AS h FROM ${t} t`)).rows.map((r) => [r.id, r.h]));
  const [src, dst] = await Promise.all([read(source, sourceTable), read(dest, destTable)]);
  const diff: TableDiff = { missing: [], extra: [], wrong: [] };
  for (const [id, h] of src) {
    const other = dst.get(id);
    if (other === undefined) diff.missing.push(id);
    else if (other !== h) diff.wrong.push(id);
  }
  for (const id of dst.keys()) if (!src.has(id)) diff.extra.push(id);
  return diff;
}

const clean = (d: TableDiff) => d.missing.length + d.extra.length + d.wrong.length === 0;

/** Waits until every destination table equals its source table, row for row. */
export async function waitForConvergence(source: pg.Client, dest: pg.Client, pairs: [string, string][], timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: Record<string, TableDiff> = {};
  for (;;) {
    last = {};
    for (const [s, d] of pairs) last[d] = await compareTables(source, dest, s, d);
    if (Object.values(last).every(clean)) return;
    if (Date.now() > deadline) throw new Error(`destination did not converge within ${timeoutMs / 1000}s: ${JSON.stringify(last).slice(0, 2000)}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}
