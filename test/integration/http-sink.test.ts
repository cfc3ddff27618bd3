import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type pg from 'pg';
import { stringify } from 'yaml';
import { CrmApi, type AppliedWrite } from '../../src/demo/crm-api.js';
import { createDemoSchema } from '../../src/demo/schema.js';
import { runWorkload } from '../../src/demo/workload.js';
import { listDeadLetters } from '../../src/flow/replay.js';
import { validateFlow } from '../../src/flow/config.js';
import { openSink } from '../../src/sink/kinds.js';
import { endpoints, kafkaClient, pgClient, readRecords, SourceCapture, uniqueName } from '../support/capture.js';
import { trustsync } from '../support/cli.js';
import { exited, killMidStream } from '../support/crash.js';
import { apiDifferences, staleWrites, waitForApiConvergence } from '../support/crm-compare.js';
import { flowDocument, spawnRun, startFlow } from '../support/flow.js';

/**
 * PostgreSQL → Debezium → trustsync → an HTTP API (a small CRM with its own store), checked from the
 * outside: the API's records against the source's rows, the API's own account of every write it
 * applied (never a customer taken back in time, never one change applied twice), and the requests
 * it answered (429s, 503s, a restart, refusals, wrong credentials).
 */
describe('an HTTP API as the destination', () => {
  const schema = uniqueName('httpsink');
  const control = `${schema}_ctl`;
  const controlUrl = endpoints.postgresUrl(control);
  const token = 'crm-secret-token';
  const dir = mkdtempSync(join(tmpdir(), 'trustsync-http-'));
  let source: pg.Client;
  let admin: pg.Client;
  let capture: SourceCapture;

  /** A flow into `api` under its own tables (crm_<name>.customers, .orders) and group: customers PATCHed, orders PUT with every change. */
  const flowFor = (name: string, api: CrmApi, extra: Record<string, unknown> = {}) =>
    flowDocument({
      name: `${schema}-${name}`,
      destinationUrl: api.url,
      topics: [
        {
          topic: capture.topic('customers'),
          table: `crm_${name}.customers`,
          http: { upsert: { method: 'PATCH', path: '/customers/{id}' }, delete: { method: 'DELETE', path: '/customers/{id}' } },
        },
        {
          topic: capture.topic('orders'),
          table: `crm_${name}.orders`,
          http: { upsert: { method: 'PUT', path: '/orders/{id}' }, delete: { method: 'DELETE', path: '/orders/{id}' }, deliver: 'every' },
        },
      ] as never,
      extra: {
        batch: { maxRows: 200, maxWaitMs: 50 },
        dlq: { topic: `trustsync.dlq.${schema}-${name}` },
        ...extra,
      },
    });
  const withHttp = (doc: Record<string, unknown>, http: Record<string, unknown>) => {
    const destination = doc.destination as Record<string, unknown>;
    return { ...doc, destination: { ...destination, http: { control: controlUrl, auth: { type: 'bearer', token: { env: 'CRM_TOKEN' } }, ...http } } };
  };

  /**
   * Writes the API applied twice for one source change: the same customer and body under two
   * idempotency keys. Every change of a customer moves its updated_at or balance, so no two of its
   * changes have one body (an order's may: an update can set the status it had).
   */
  const appliedTwice = (writes: readonly AppliedWrite[]) => {
    const seen = new Map<string, string | undefined>();
    const twice: string[] = [];
    for (const w of writes.filter((x) => x.collection === 'customers')) {
      const what = `${w.method} ${w.collection}/${w.id} ${JSON.stringify(w.body)}`;
      if (seen.has(what) && seen.get(what) !== w.idempotencyKey) twice.push(what.slice(0, 120));
      seen.set(what, w.idempotencyKey);
    }
    return twice;
  };

  /** Distinct changes (key, position) of a topic: what `deliver: every` sends each of, once. */
  const distinctChanges = async (topic: string) => {
    const seen = new Set<string>();
    for (const r of await readRecords(kafkaClient(), topic, 0)) {
      if (!r.value) continue;
      const value = JSON.parse(r.value.toString()) as { payload?: { source: { lsn: number }; op: string }; source?: { lsn: number }; op?: string };
      const v = value.payload ?? value;
      seen.add(`${r.key?.toString()}@${v.source!.lsn}/${(v as { op: string }).op}`);
    }
    return seen.size;
  };

  beforeAll(async () => {
    process.env.CRM_TOKEN = token;
    source = await pgClient('trustsync_source');
    await createDemoSchema(source, schema);
    await runWorkload(source, schema, 80, 11);
    admin = await pgClient('trustsync_dest');
    await admin.query(`CREATE DATABASE ${control}`);
    capture = new SourceCapture(schema, schema, ['customers', 'orders'], 'json');
    await capture.start();
  });

  afterAll(async () => {
    await capture?.stop();
    await source?.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await source?.end();
    await admin?.query(`DROP DATABASE IF EXISTS ${control} WITH (FORCE)`);
    await admin?.end();
  });

  it('ends equal to the source through 429s, 503s and a restart of the API, never stale, never a change applied twice', async () => {
    const api = await new CrmApi({ token }).start();
    const config = validateFlow(withHttp(flowFor('storm', api), { concurrency: 4, maxAttempts: 4, maxDelayMs: 2000 }), 'storm.yaml');
    const runner = await startFlow(config);
    const writer = await pgClient('trustsync_source');
    try {
      api.throttleNext(20, 1);
      await runWorkload(writer, schema, 60, 12);
      api.failNext(10);
      await runWorkload(writer, schema, 60, 13);
      await api.stop();
      await runWorkload(writer, schema, 60, 14);
      await new Promise((r) => setTimeout(r, 2000));
      await api.start();
      await runWorkload(writer, schema, 60, 15);
      await waitForApiConvergence(source, schema, api);
    } finally {
      await writer.end();
      await runner.stop();
      await api.stop();
    }
    expect(api.requests.filter((r) => r.status === 429).length).toBe(20);
    expect(api.requests.filter((r) => r.status === 503).length).toBe(10);
    expect(staleWrites(api.writes)).toEqual([]);
    expect(appliedTwice(api.writes)).toEqual([]);
    // deliver: every — each order change reached the API once (snapshot reads included), none collapsed away.
    expect(api.writes.filter((w) => w.collection === 'orders').length).toBe(await distinctChanges(capture.topic('orders')));
    // Throttling and outages cost no data: nothing was dead-lettered.
    expect(await listDeadLetters(config)).toEqual([]);

    // explain tells a record's story from the control database: each request with its status, attempt and idempotency key.
    const sink = openSink(config.destinationUrl, { name: 'explain', connections: 1, settings: config.destinationSettings });
    try {
      const id = [...api.records('customers').keys()][0]!;
      const story = await sink.explain('crm_storm.customers', id);
      const applied = story.timeline.filter((t) => t.decision === 'applied');
      expect(applied.length).toBeGreaterThan(0);
      expect(applied.at(-1)!.reason).toMatch(/^PATCH \/customers\/\d+ answered 20[01] on attempt \d+, idempotency key ts-[0-9a-f]{40}$/);
    } finally {
      await sink.close();
    }
  });

  it('sends a change the API refuses (422) to the DLQ with its status and the body excerpt; every other change flows', async () => {
    const api = await new CrmApi({
      token,
      validate: (c, r) => (c !== 'customers' || String(r.email).includes('@') ? undefined : 'email must be an address'),
    }).start();
    const writer = await pgClient('trustsync_source');
    const id = 9_000_001;
    await writer.query(`INSERT INTO ${schema}.customers (id, email, name) VALUES ($1, 'not an address', 'Poison')`, [id]);
    const config = validateFlow(withHttp(flowFor('poison', api), {}), 'poison.yaml');
    const runner = await startFlow(config);
    try {
      await runWorkload(writer, schema, 30, 21);
      // Everything but the refused record arrives.
      await expect
        .poll(async () => (await apiDifferences(source, schema, api)).filter((d) => !d.startsWith(`customers ${id}:`)), { timeout: 120_000, interval: 500 })
        .toEqual([]);
      await expect.poll(async () => (await listDeadLetters(config)).length, { timeout: 30_000 }).toBe(1);
    } finally {
      await writer.query(`DELETE FROM ${schema}.customers WHERE id = $1`, [id]);
      await writer.end();
      await runner.stop();
      await api.stop();
    }
    const [letter] = await listDeadLetters(config);
    expect(letter!.code).toBe('row-rejected');
    expect(letter!.message).toBe(`PATCH /customers/${id} answered 422: {"error":"email must be an address"}`);
    // The secret never travels with a dead letter.
    expect(JSON.stringify(letter)).not.toContain(token);
  });

  it('stops on credentials the API refuses, with one line naming the field, and dead-letters nothing', async () => {
    const api = await new CrmApi({ token }).start();
    const file = join(dir, 'wrong-token.yaml');
    writeFileSync(file, stringify(withHttp(flowFor('denied', api), {})));
    try {
      const run = await trustsync(['run', '--config', file], { CRM_TOKEN: 'not-the-token' });
      expect(run.status).toBe(2);
      expect(run.stderr).toMatch(/refused trustsync's credentials \(401\)/);
      expect(run.stderr).toMatch(/destination\.http\.auth/);
      expect(run.stderr).not.toMatch(/\n\s+at /);
      expect(run.stdout + run.stderr).not.toContain('not-the-token');
    } finally {
      await api.stop();
    }
    expect(api.writes).toEqual([]);
    expect(await listDeadLetters(validateFlow(withHttp(flowFor('denied', api), {}), file))).toEqual([]);
  });

  it('killed with SIGKILL again and again mid-stream: the API ends equal to the source, a re-sent change under its first idempotency key', async () => {
    const api = await new CrmApi({ token }).start();
    const file = join(dir, 'killed.yaml');
    const logFile = join(dir, 'killed.log');
    writeFileSync(file, stringify(withHttp(flowFor('killed', api), { concurrency: 4 })));
    try {
      await killMidStream(
        schema,
        4,
        () => spawnRun(file, logFile),
        () => Promise.resolve(api.requests.length),
      );
      const last = spawnRun(file, logFile);
      await waitForApiConvergence(source, schema, api);
      const exit = exited(last);
      last.kill('SIGTERM');
      expect(await exit).toEqual({ code: 0, signal: null });
    } finally {
      await api.stop();
    }
    expect(staleWrites(api.writes)).toEqual([]);
    expect(appliedTwice(api.writes)).toEqual([]);
    expect(api.writes.filter((w) => w.collection === 'orders').length).toBe(await distinctChanges(capture.topic('orders')));
  });
});
