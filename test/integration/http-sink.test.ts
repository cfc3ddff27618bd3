import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type pg from 'pg';
import { stringify } from 'yaml';
import { CrmApi, type AppliedWrite } from '../../src/demo/crm-api.js';
import { createDemoSchema } from '../../src/demo/schema.js';
import { runWorkload } from '../../src/demo/workload.js';
import { listDeadLetters, replayDeadLetters } from '../../src/flow/replay.js';
import pino from 'pino';
import { validateFlow } from '../../src/flow/config.js';
import { openSink } from '../../src/sink/kinds.js';
import { UNAVAILABLE_VALUE } from '../../src/model/change.js';
import type { TableMapping } from '../../src/model/table.js';
import { changeAt } from '../support/events.js';
import { endpoints, kafkaClient, pgClient, readRecords, SourceCapture, uniqueName } from '../support/capture.js';
import { trustsync } from '../support/cli.js';
import { exited, killMidStream } from '../support/crash.js';
import { apiDifferences, staleWrites } from '../../src/demo/api-compare.js';
import { waitForApiConvergence } from '../support/crm-compare.js';
import { flowDocument, spawnRun, startFlow } from '../support/flow.js';
import { waitFor } from '../support/wait.js';

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
    const config = validateFlow(withHttp(flowFor('storm', api, { metrics: { port: 0 } }), { concurrency: 4, maxAttempts: 4, maxDelayMs: 2000 }), 'storm.yaml');
    const runner = await startFlow(config);
    const writer = await pgClient('trustsync_source');
    let scrape = '';
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
      scrape = await (await fetch(runner.metricsAddress!)).text();
    } finally {
      await writer.end();
      await runner.stop();
      await api.stop();
    }
    // /metrics tells what the API saw: every answer by status, the throttles among them, and the
    // attempts no answer came to while it was down (which the API cannot count).
    const answered = new Map<string, number>();
    for (const r of api.requests.filter((q) => q.method !== 'HEAD'))
      answered.set(`${r.method} ${r.status}`, (answered.get(`${r.method} ${r.status}`) ?? 0) + 1);
    const exported = new Map<string, number>();
    for (const m of scrape.matchAll(/^trustsync_destination_requests_total\{flow="[^"]+",method="(\w+)",code="(\w+)"\} (\d+)$/gm))
      if (m[2] !== 'none') exported.set(`${m[1]} ${m[2]}`, Number(m[3]));
    expect(exported).toEqual(answered);
    expect(scrape).toMatch(/^trustsync_destination_requests_total\{[^}]*code="none"\} [1-9]/m);
    expect(scrape).toMatch(/^trustsync_destination_throttled_total\{[^}]*\} 30$/m);
    expect(Number(/^trustsync_destination_request_retries_total\{[^}]*\} (\d+)$/m.exec(scrape)?.[1])).toBeGreaterThan(0);
    expect(scrape).toMatch(/^trustsync_destination_requests_in_flight\{[^}]*\} 0$/m);
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

  it('sends a change the API refuses (422) to the DLQ with its status and the body excerpt; every other change flows; dlq replay goes through the same guard', async () => {
    let strict = true;
    const api = await new CrmApi({
      token,
      validate: (c, r) => (!strict || c !== 'customers' || String(r.email).includes('@') ? undefined : 'email must be an address'),
    }).start();
    const writer = await pgClient('trustsync_source');
    // Two refused customers: one the API later learns to accept, one the source fixes first.
    const [kept, fixed] = [9_000_001, 9_000_002];
    for (const id of [kept, fixed]) await writer.query(`INSERT INTO ${schema}.customers (id, email, name) VALUES ($1, 'not an address', 'Poison')`, [id]);
    const config = validateFlow(withHttp(flowFor('poison', api), {}), 'poison.yaml');
    const runner = await startFlow(config);
    const refused = (d: string) => d.startsWith(`customers ${kept}:`) || d.startsWith(`customers ${fixed}:`);
    try {
      try {
        await runWorkload(writer, schema, 30, 21);
        // Everything but the refused records arrives.
        await expect.poll(async () => (await apiDifferences(source, schema, api)).filter((d) => !refused(d)), { timeout: 120_000, interval: 500 }).toEqual([]);
        await expect.poll(async () => (await listDeadLetters(config)).length, { timeout: 30_000 }).toBe(2);
        await writer.query(`UPDATE ${schema}.customers SET email = 'fixed@example.com', updated_at = now() WHERE id = $1`, [fixed]);
        await expect.poll(async () => api.records('customers').get(String(fixed))?.email, { timeout: 60_000 }).toBe('fixed@example.com');
      } finally {
        await runner.stop();
      }
      const letters = await listDeadLetters(config);
      const letter = letters.find((l) => l.message.includes(`/customers/${kept} `))!;
      expect(letter.code).toBe('row-rejected');
      expect(letter.message).toBe(`PATCH /customers/${kept} answered 422: {"error":"email must be an address"}`);
      // The secret never travels with a dead letter.
      expect(JSON.stringify(letters)).not.toContain(token);

      // The API now accepts the address: the kept customer's change is sent; the fixed one's is older than what the API holds.
      strict = false;
      const replayed = await replayDeadLetters(config, () => true, false, pino({ level: 'silent' }));
      expect(replayed.map((r) => [r.entry.message.split(' ')[1], r.outcome]).sort()).toEqual([
        [`/customers/${kept}`, 'applied'],
        [`/customers/${fixed}`, 'stale'],
      ]);
      expect(await apiDifferences(source, schema, api)).toEqual([]);
      expect(api.records('customers').get(String(fixed))?.email).toBe('fixed@example.com');
      expect(await listDeadLetters(config)).toEqual([]);
    } finally {
      await writer.query(`DELETE FROM ${schema}.customers WHERE id = ANY($1)`, [[kept, fixed]]);
      await writer.end();
      await api.stop();
    }
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
    let last: ChildProcess | undefined;
    try {
      await killMidStream(
        schema,
        4,
        () => spawnRun(file, logFile),
        () => Promise.resolve(api.requests.length),
      );
      last = spawnRun(file, logFile);
      await waitForApiConvergence(source, schema, api);
      const exit = exited(last);
      last.kill('SIGTERM');
      expect(await exit).toEqual({ code: 0, signal: null });
    } finally {
      if (last?.exitCode === null && last.signalCode === null) last.kill('SIGKILL');
      await api.stop();
    }
    expect(staleWrites(api.writes)).toEqual([]);
    expect(appliedTwice(api.writes)).toEqual([]);
    expect(api.writes.filter((w) => w.collection === 'orders').length).toBe(await distinctChanges(capture.topic('orders')));
  });

  it('an API down longer than the retry budget: the partitions wait for it and dead-letter nothing, a stop while waiting is prompt, and the API ends equal once back', async () => {
    const api = await new CrmApi({ token }).start();
    const config = validateFlow(
      withHttp(flowFor('outage', api, { metrics: { port: 0 }, retry: { maxAttempts: 2, initialDelayMs: 100, maxDelayMs: 400 } }), {
        maxAttempts: 2,
        maxDelayMs: 200,
      }),
      'outage.yaml',
    );
    let runner = await startFlow(config);
    const writer = await pgClient('trustsync_source');
    const waiting = async () => {
      const scrape = await (await fetch(runner.metricsAddress!)).text();
      return [...scrape.matchAll(/^trustsync_partitions_waiting_for_destination\{[^}]*\} (\d+)$/gm)].reduce((n, m) => n + Number(m[1]), 0);
    };
    try {
      await waitForApiConvergence(source, schema, api);
      await api.stop();
      await runWorkload(writer, schema, 40, 41);
      // Far past both budgets (2 requests × 2 batch attempts, delays under half a second): waiting, not stopped.
      await expect.poll(waiting, { timeout: 60_000, interval: 250 }).toBeGreaterThan(0);
      await new Promise((r) => setTimeout(r, 5000));
      expect(runner.state).toBe('running');
      expect(await waiting()).toBeGreaterThan(0);

      // Stopped while waiting: at once and cleanly, the batches given up uncommitted.
      const asked = Date.now();
      await runner.stop();
      await runner.done;
      expect(Date.now() - asked).toBeLessThan(15_000);

      runner = await startFlow(config);
      await expect.poll(waiting, { timeout: 60_000, interval: 250 }).toBeGreaterThan(0);
      await api.start();
      await runWorkload(writer, schema, 20, 42);
      await waitForApiConvergence(source, schema, api);
      await expect.poll(waiting, { timeout: 10_000 }).toBe(0);
    } finally {
      await writer.end();
      await runner.stop();
      await api.stop();
    }
    expect(staleWrites(api.writes)).toEqual([]);
    expect(appliedTwice(api.writes)).toEqual([]);
    // The outage cost no data and no dead letter.
    expect(await listDeadLetters(config)).toEqual([]);
  });

  it('a table under policy sends only the fields its source owns: the tier the CRM keeps is never overwritten, and explain says what was left to it', async () => {
    const api = await new CrmApi({ token }).start();
    const doc = withHttp(flowFor('owned', api), { concurrency: 4 }) as unknown as {
      source: object;
      destination: { system?: string; tables: Record<string, unknown>[] };
    };
    const destination = doc.destination;
    destination.system = 'crm';
    destination.tables[0]!.policy = 'customer';
    const config = validateFlow(
      {
        ...doc,
        source: { ...doc.source, system: 'app' },
        policies: { customer: { default: { owner: 'app', strategy: 'local_wins' }, fields: { tier: { owner: 'crm' } } } },
      },
      'owned.yaml',
    );
    const kept = { customers: ['tier'] };
    const runner = await startFlow(config);
    const writer = await pgClient('trustsync_source');
    /** The CRM's own users set a customer's tier, through its API. */
    const crmSetsTier = (id: string) =>
      fetch(`${api.url}/customers/${id}`, {
        method: 'PATCH',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ tier: `crm-${id}` }),
      }).then((r) => expect(r.status).toBe(200));
    let tiered: string[] = [];
    try {
      await waitForApiConvergence(source, schema, api, 120_000, kept);
      // Nothing trustsync sent carried a tier: records it created have none.
      expect([...api.records('customers').values()].filter((r) => 'tier' in r)).toEqual([]);
      tiered = [...api.records('customers').keys()];
      for (const id of tiered) await crmSetsTier(id);
      // The source changes tiers (and everything else) again and again.
      await runWorkload(writer, schema, 60, 51);
      await waitForApiConvergence(source, schema, api, 120_000, kept);
    } finally {
      await writer.end();
      await runner.stop();
      await api.stop();
    }
    const held = api.records('customers');
    const survivors = tiered.filter((id) => held.has(id));
    expect(survivors.length).toBeGreaterThan(0);
    for (const id of survivors) expect(held.get(id)!.tier).toBe(`crm-${id}`);
    expect(api.writes.filter((w) => w.idempotencyKey?.startsWith('ts-') && w.body && 'tier' in w.body)).toEqual([]);
    expect(staleWrites(api.writes)).toEqual([]);

    const sink = openSink(config.destinationUrl, { name: 'explain', connections: 1, settings: config.destinationSettings });
    try {
      const story = await sink.explain('crm_owned.customers', survivors[0]!);
      expect(story.timeline.filter((t) => t.decision === 'applied').at(-1)!.reason).toMatch(
        /^PATCH \/customers\/\d+ answered 20[01] on attempt \d+, idempotency key ts-[0-9a-f]{40}; left to crm by policy customer: tier$/,
      );
    } finally {
      await sink.close();
    }
  });

  it('a slow API (15 s an answer) holds partitions longer than the Kafka session: the member keeps its place, the API ends equal', async () => {
    const api = await new CrmApi({ token }).start();
    const config = validateFlow(withHttp(flowFor('slow', api), { concurrency: 8, timeoutMs: 30_000 }), 'slow.yaml');
    const runner = await startFlow(config);
    const writer = await pgClient('trustsync_source');
    const admin = kafkaClient().admin();
    await admin.connect();
    /** The group's members as the broker sees them: a member that missed its session rejoins under a new id. */
    const members = async () => (await admin.describeGroups([config.group])).groups[0]!.members.map((m) => m.memberId);
    try {
      await waitForApiConvergence(source, schema, api);
      const before = await members();
      expect(before).toHaveLength(1);
      api.delayMs = 15_000;
      // A second wave while the first is in the API's hands: its batches wait for the first ones, longer than the session.
      await runWorkload(writer, schema, 10, 31);
      await new Promise((r) => setTimeout(r, 2000));
      await runWorkload(writer, schema, 10, 32);
      await waitForApiConvergence(source, schema, api);
      expect(await members()).toEqual(before);
    } finally {
      await admin.disconnect();
      await writer.end();
      await runner.stop();
      await api.stop();
    }
    expect(staleWrites(api.writes)).toEqual([]);
  });

  it('versions the API compares: with its ledger lost and every topic read again, the API refuses each older version and no record goes back in time', async () => {
    const api = await new CrmApi({ token, versions: { field: 'source_version', header: 'X-Source-Version' } }).start();
    const lostControl = `${schema}_ctlv`;
    /** A flow whose customers carry versions the API compares (409 when not newer), and orders versions trustsync compares (GET, then If-Match). */
    const versioned = (name: string) => {
      const doc = withHttp(flowFor(name, api), { control: endpoints.postgresUrl(lostControl), concurrency: 4 }) as unknown as {
        destination: { tables: { http: object }[] };
      };
      const [customers, orders] = doc.destination.tables;
      customers!.http = { ...customers!.http, version: { field: 'source_version', header: 'X-Source-Version', check: 'api' } };
      orders!.http = { ...orders!.http, version: { field: 'source_version', check: 'etag' } };
      return validateFlow(doc, `${name}.yaml`);
    };
    const kafkaAdmin = kafkaClient().admin();
    /** The group has committed every partition of both topics to its end. */
    const caughtUp = async (group: string) => {
      for (const t of ['customers', 'orders']) {
        const topic = capture.topic(t);
        const ends = await kafkaAdmin.fetchTopicOffsets(topic);
        const [committed] = await kafkaAdmin.fetchOffsets({ groupId: group, topics: [topic] });
        for (const e of ends) if (committed?.partitions.find((p) => p.partition === e.partition)?.offset !== e.high) return false;
      }
      return true;
    };
    const writer = await pgClient('trustsync_source');
    await kafkaAdmin.connect();
    await admin.query(`CREATE DATABASE ${lostControl}`);
    let replay: ReturnType<typeof versioned> | undefined;
    try {
      const first = await startFlow(versioned('versioned'));
      try {
        await runWorkload(writer, schema, 60, 61);
        await waitForApiConvergence(source, schema, api);
      } finally {
        await first.stop();
      }
      expect(api.records('customers').size).toBeGreaterThan(0);
      for (const record of api.records('customers').values()) expect(record.source_version).toMatch(/^\d{39}$/);

      // The control database is lost (its ledger and history with it), and a new group reads every topic from the start.
      await admin.query(`DROP DATABASE ${lostControl} WITH (FORCE)`);
      await admin.query(`CREATE DATABASE ${lostControl}`);
      const held = new Set(
        [...api.records('customers').keys()].map((id) => `customers/${id}`).concat([...api.records('orders').keys()].map((id) => `orders/${id}`)),
      );
      const writesBefore = api.writes.length;
      const refusedBefore = api.conflicts.version;
      replay = versioned('replayed');
      const second = await startFlow(replay);
      try {
        await waitFor(() => caughtUp(replay!.group), 'the replay to reach the end of every partition', 180_000);
        // Record by record, the API refused every version older than its own: the records it held took no write.
        const replayed = api.writes.slice(writesBefore);
        expect(replayed.filter((w) => held.has(`${w.collection}/${w.id}`))).toEqual([]);
        expect(api.conflicts.version).toBeGreaterThan(refusedBefore);
        await waitForApiConvergence(source, schema, api);
        // And the flow goes on: newer changes are newer than the API's versions.
        await runWorkload(writer, schema, 40, 62);
        await waitForApiConvergence(source, schema, api);
      } finally {
        await second.stop();
      }
      expect(staleWrites(api.writes)).toEqual([]);
      expect(await listDeadLetters(replay)).toEqual([]);
    } finally {
      await kafkaAdmin.disconnect();
      await writer.end();
      await api.stop();
    }
    // The new ledger's history tells each refusal: the request, the API's answer, its idempotency key.
    const sink = openSink(replay.destinationUrl, { name: 'explain', connections: 1, settings: replay.destinationSettings });
    try {
      const id = [...api.records('customers').keys()][0]!;
      const story = await sink.explain('crm_replayed.customers', id);
      expect(story.timeline.find((t) => t.decision === 'skipped-stale')?.reason).toMatch(
        /^PATCH \/customers\/\d+ answered 409: the API holds a newer version \(idempotency key ts-[0-9a-f]{40}\)$/,
      );
    } finally {
      await sink.close();
      await admin.query(`DROP DATABASE IF EXISTS ${lostControl} WITH (FORCE)`);
    }
  });

  it('finishes a request that went out unacknowledged, exactly as it went out, before anything newer: a large column it carried is not lost', async () => {
    const api = await new CrmApi({ token }).start();
    const config = validateFlow(withHttp(flowFor('unfinished', api), { maxAttempts: 1 }), 'unfinished.yaml');
    const sink = openSink(config.destinationUrl, { name: 'unfinished', connections: 1, settings: config.destinationSettings });
    const m: TableMapping = { topic: 't', table: { schema: 'crm_unfinished', table: 'customers' }, rename: {}, createIfMissing: false };
    const audit = { flow: 'unfinished', extra: [] };
    // c1 sets the note; c2 and c3 leave it unchanged, so Debezium sends them with the placeholder.
    const c1 = changeAt(7, 100, { after: { id: 7, name: 'A', notes: 'the only copy of the note' } });
    const c2 = changeAt(7, 200, { after: { id: 7, name: 'B', notes: UNAVAILABLE_VALUE } });
    const c3 = changeAt(7, 300, { after: { id: 7, name: 'C', notes: UNAVAILABLE_VALUE } });
    try {
      await sink.prepare();
      // c2 goes out carrying c1's note and is never acknowledged (as if the process died).
      api.failNext(1);
      await expect(sink.applyBatch(m, [c2], audit, [c1])).rejects.toThrow(/503/);
      expect(api.records('customers').get('7')).toBeUndefined();
      // Delivered again in smaller batches: c1 alone is older than what went out, so it is not sent.
      expect((await sink.applyBatch(m, [c1], audit)).map((d) => d.decision)).toEqual(['skipped']);
      // c2 superseded by c3: c2's request is finished first, with its note, then c3.
      expect((await sink.applyBatch(m, [c3], audit, [c2])).map((d) => d.decision)).toEqual(['applied']);
      expect(api.records('customers').get('7')).toMatchObject({ name: 'C', notes: 'the only copy of the note' });
      expect(api.writes.map((w) => w.body)).toEqual([
        { id: 7, name: 'B', notes: 'the only copy of the note' },
        { id: 7, name: 'C' },
      ]);
      const story = await sink.explain('crm_unfinished.customers', '7');
      expect(story.timeline.at(-1)!.reason).toMatch(/first finished PATCH \/customers\/7 \(idempotency key ts-[0-9a-f]{40}, answered 20[01]\)$/);
    } finally {
      await sink.close();
      await api.stop();
    }
  });
});
