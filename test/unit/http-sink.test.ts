import { describe, expect, it } from 'vitest';
import { FlowConfigError, validateFlow } from '../../src/flow/config.js';
import { UNAVAILABLE_VALUE } from '../../src/model/change.js';
import { RowRejected } from '../../src/model/errors.js';
import { everyChangeInOrder } from '../../src/order/plan.js';
import { positionRank } from '../../src/order/position.js';
import { withCarriedValues } from '../../src/sink/http/http-sink.js';
import { sendsDeletes } from '../../src/sink/http/authority.js';
import { DestinationLimiter, retryAfterMs } from '../../src/sink/http/limiter.js';
import { changeRequest, idempotencyKey, jsonValue, versionRank, versionText } from '../../src/sink/http/request.js';
import { deliver, type DeliveryTarget } from '../../src/sink/http/deliver.js';
import { CrmApi } from '../../src/demo/crm-api.js';
import { authHeaders, type HttpVersionSpec } from '../../src/sink/http/settings.js';
import { changeAt } from '../support/events.js';

/** A change of key `id` at position `lsn`: its op and row. */
const ch = (id: number | string, op: 'c' | 'u' | 'd', after: Record<string, unknown> | null, lsn: bigint) =>
  changeAt(0, lsn, { op, key: { id }, keyText: JSON.stringify(id), after });

const mapping = { topic: 't', table: { schema: 'crm', table: 'customers' }, rename: { email: 'mail' }, createIfMissing: false };
const spec = {
  upsert: { method: 'PATCH' as const, path: '/customers/{id}' },
  delete: { method: 'DELETE' as const, path: '/customers/{id}' },
  headers: {},
  deliver: 'latest' as const,
};

describe('an HTTP request per change', () => {
  it('names the record by its values in the path and sends the mapped row, without the columns an update left unchanged', () => {
    const e = ch(7, 'u', { id: 7, email: 'a@b', notes: UNAVAILABLE_VALUE, tier: 'gold' }, 5n);
    const r = changeRequest(spec, mapping, e)!;
    expect(r.method).toBe('PATCH');
    expect(r.path).toBe('/customers/7');
    expect(JSON.parse(r.body!)).toEqual({ id: 7, mail: 'a@b', tier: 'gold' });
  });

  it('deletes without a body, and sends nothing for a delete the table has no request for', () => {
    const d = ch(7, 'd', null, 6n);
    expect(changeRequest(spec, mapping, d)).toMatchObject({ method: 'DELETE', path: '/customers/7', body: undefined });
    expect(changeRequest({ ...spec, delete: undefined }, mapping, d)).toBeUndefined();
  });

  it('encodes path values, and rejects a change that lacks one (no request could name its record)', () => {
    const e = ch('a/b c', 'c', { id: 'a/b c', email: 'x' }, 1n);
    expect(changeRequest(spec, mapping, e)!.path).toBe('/customers/a%2Fb%20c');
    expect(() => changeRequest({ ...spec, upsert: { method: 'PUT', path: '/accounts/{account}' } }, mapping, e)).toThrow(RowRejected);
  });

  it('gives each change one idempotency key: the same for every attempt and replay, another for another position or key', () => {
    expect(idempotencyKey('crm.customers', '7', 5n)).toBe(idempotencyKey('crm.customers', '7', '5'));
    expect(idempotencyKey('crm.customers', '7', 5n)).not.toBe(idempotencyKey('crm.customers', '7', 6n));
    expect(idempotencyKey('crm.customers', '7', 5n)).not.toBe(idempotencyKey('crm.customers', '8', 5n));
    expect(idempotencyKey('crm.customers', '7', 5n)).toMatch(/^ts-[0-9a-f]{40}$/);
  });

  it('writes values as JSON carries them: instants as ISO text, big integers exact, JSON columns as JSON', () => {
    expect(jsonValue(1_700_000_000_000_000n, { type: 'int64', optional: false, name: 'io.debezium.time.MicroTimestamp' })).toBe('2023-11-14T22:13:20.000000');
    expect(jsonValue(2n ** 60n, { type: 'int64', optional: false })).toBe('1152921504606846976');
    expect(jsonValue(12n, { type: 'int64', optional: false })).toBe(12);
    expect(jsonValue('{"a":[1]}', { type: 'string', optional: false, name: 'io.debezium.data.Json' })).toEqual({ a: [1] });
    expect(jsonValue(Buffer.from('hi'), { type: 'bytes', optional: false })).toBe('aGk=');
  });

  it("fills an unchanged column from the batch's newest older change the API never got, and never from one it has", () => {
    const winner = ch(7, 'u', { id: 7, notes: UNAVAILABLE_VALUE }, 30n);
    const older = [ch(7, 'u', { id: 7, notes: 'ten' }, 10n), ch(7, 'u', { id: 7, notes: 'twenty' }, 20n), ch(8, 'u', { id: 8, notes: 'x' }, 25n)];
    const rank = (i: number) => positionRank(older[i]!.position);
    expect(withCarriedValues(winner, undefined, older).after!.notes).toBe('twenty');
    expect(withCarriedValues(winner, rank(0), older).after!.notes).toBe('twenty');
    // The API holds position 20 already: its notes are as new as any the batch has.
    expect(withCarriedValues(winner, rank(1), older).after!.notes).toBe(UNAVAILABLE_VALUE);
  });
});

describe('versions the API can compare', () => {
  const versioned = { ...spec, upsert: { method: 'PUT' as const, path: '/customers/{id}' }, headers: { 'X-Source': 'trustsync' } };
  const target = (api: CrmApi): DeliveryTarget => ({
    baseUrl: api.url,
    headers: {},
    idempotencyHeader: 'Idempotency-Key',
    timeoutMs: 5000,
    maxAttempts: 4,
    maxDelayMs: 50,
    limiter: new DestinationLimiter(4, undefined),
    halted: () => false,
  });
  const put = (api: CrmApi, lsn: bigint, version: HttpVersionSpec) =>
    deliver(target(api), changeRequest({ ...versioned, version }, mapping, ch(7, 'u', { id: 7, tier: `t${lsn}` }, lsn))!, version);

  it('writes a version that sorts as text as it does as a number, in the body field and the header, beside the table headers', () => {
    const r = changeRequest(
      { ...versioned, version: { field: 'v', header: 'X-Version', check: 'api', staleStatuses: [409] } },
      mapping,
      ch(7, 'u', { id: 7 }, 5n),
    )!;
    const v = versionText(positionRank(ch(7, 'u', {}, 5n).position));
    expect(JSON.parse(r.body!)).toEqual({ id: 7, v });
    expect(r.headers).toEqual({ 'X-Source': 'trustsync', 'X-Version': v });
    expect(versionText(2n ** 100n) > versionText(2n ** 99n)).toBe(true);
    expect(versionText(9n) < versionText(10n)).toBe(true);
    expect(versionRank(versionText(2n ** 100n))).toBe(2n ** 100n);
    expect(versionRank('v1')).toBeUndefined();
    // A delete has no body: its version travels in the header only.
    expect(
      changeRequest({ ...versioned, version: { header: 'X-Version', check: 'api', staleStatuses: [409] } }, mapping, ch(7, 'd', null, 6n))!.headers,
    ).toHaveProperty('X-Version');
  });

  it('check api: the API refuses a version not newer than its own, and the change is stale, not dead-lettered', async () => {
    const api = await new CrmApi({ versions: { field: 'v' } }).start();
    try {
      const version = { field: 'v', check: 'api' as const, staleStatuses: [409, 412] };
      expect(await put(api, 20n, version)).toMatchObject({ outcome: 'acknowledged' });
      expect(await put(api, 10n, version)).toMatchObject({ outcome: 'stale', status: 409 });
      expect(api.records('customers').get('7')!.tier).toBe('t20');
      expect(await put(api, 30n, version)).toMatchObject({ outcome: 'acknowledged' });
      expect(api.records('customers').get('7')!.tier).toBe('t30');
    } finally {
      await api.stop();
    }
  });

  it('check etag: reads the version the record holds, sends nothing older, and reads again when another writer came between', async () => {
    const api = await new CrmApi().start();
    try {
      const version = { field: 'v', check: 'etag' as const, staleStatuses: [409, 412] };
      expect(await put(api, 20n, version)).toMatchObject({ outcome: 'acknowledged', status: 201 });
      const writes = api.writes.length;
      expect(await put(api, 10n, version)).toMatchObject({ outcome: 'stale', held: positionRank(ch(7, 'u', {}, 20n).position) });
      expect(api.writes.length).toBe(writes);
      api.editAfterNextRead('customers', '7', { tier: 'edited elsewhere' });
      expect(await put(api, 30n, version)).toMatchObject({ outcome: 'acknowledged', attempts: 2 });
      expect(api.conflicts.precondition).toBe(1);
      expect(api.records('customers').get('7')!.tier).toBe('t30');
      expect(api.requests.map((r) => `${r.method} ${r.status}`).slice(-5)).toEqual(['GET 200', 'GET 200', 'PUT 412', 'GET 200', 'PUT 200']);
    } finally {
      await api.stop();
    }
  });

  it('check etag against an API without ETags: one line naming the field, nothing sent', async () => {
    const api = await new CrmApi({ etags: false }).start();
    try {
      const version = { field: 'v', check: 'etag' as const, staleStatuses: [409] };
      await put(api, 20n, version);
      expect(await put(api, 30n, version)).toMatchObject({ outcome: 'unusable', problem: expect.stringContaining('without an ETag') as unknown });
      expect(api.records('customers').get('7')!.tier).toBe('t20');
    } finally {
      await api.stop();
    }
  });
});

describe('deliver: every', () => {
  it("keeps each key's every change in source order, leaving out only a change that is there twice", () => {
    const plan = everyChangeInOrder([ch(1, 'u', {}, 3n), ch(2, 'c', {}, 2n), ch(1, 'c', {}, 1n), ch(1, 'u', {}, 3n)]);
    expect(plan.latest.map((e) => `${e.keyText}@${e.position.lsn}`)).toEqual(['1@1', '1@3', '2@2']);
    expect(plan.superseded.map((s) => s.reason)).toEqual(['duplicate']);
  });
});

describe("a destination's pace", () => {
  it('reads Retry-After as seconds or as a date', () => {
    expect(retryAfterMs('3')).toBe(3000);
    expect(retryAfterMs(new Date(10_000).toUTCString(), 4000)).toBe(6000);
    expect(retryAfterMs(null)).toBeUndefined();
    expect(retryAfterMs('soon')).toBeUndefined();
  });

  it('holds requests in flight to its concurrency', async () => {
    const limiter = new DestinationLimiter(2, undefined);
    await limiter.acquire();
    await limiter.acquire();
    let third = false;
    const waiting = limiter.acquire().then(() => (third = true));
    await new Promise((r) => setTimeout(r, 20));
    expect(third).toBe(false);
    limiter.release();
    await waiting;
    expect(limiter.active).toBe(2);
  });

  it('halves its rate when throttled, pauses everyone for Retry-After, then climbs back to the configured rate', async () => {
    let now = 0;
    const limiter = new DestinationLimiter(10, 100, () => now);
    expect(limiter.rate).toBe(100);
    for (let i = 0; i < 40; i++) {
      await limiter.acquire();
      limiter.release();
      now += 10;
    }
    limiter.throttled(0);
    expect(limiter.rate).toBeLessThanOrEqual(50);
    for (let i = 0; i < 200; i++) limiter.succeeded();
    expect(limiter.rate).toBe(100);
  });
});

describe('an HTTP destination in the flow file', () => {
  const doc = (destination: Record<string, unknown>, table: Record<string, unknown> = {}) => ({
    flow: 'crm',
    source: { brokers: ['127.0.0.1:19092'], decoding: 'json' },
    destination: { url: 'https://api.example.com/v2', ...destination, tables: [{ topic: 'cdc.shop.customers', table: 'crm.customers', ...table }] },
  });
  const problems = (d: unknown) => {
    try {
      validateFlow(d, 'flow.yaml');
      return [];
    } catch (err) {
      return (err as FlowConfigError).problems;
    }
  };

  it('needs its control database and each table its upsert request', () => {
    expect(problems(doc({}))).toEqual([
      'destination.http: missing — an HTTP destination needs control (a postgres:// URL for its ledger and history), and optionally auth and limits',
      'destination.tables.0.http: missing — name the upsert request of crm.customers, e.g. { upsert: { method: PUT, path: /customers/{id} } }',
    ]);
  });

  it("takes defaults for its limits and carries each table's requests to its sink", () => {
    const c = validateFlow(
      doc({ http: { control: 'postgres://u@h/ctl' } }, { http: { upsert: { method: 'PUT', path: '/c/{id}' }, deliver: 'every' } }),
      'f.yaml',
    );
    expect(c.destinationSettings).toMatchObject({ concurrency: 8, timeoutMs: 10_000, idempotencyHeader: 'Idempotency-Key', maxAttempts: 6 });
    expect(c.destinationSettings!.tables['crm.customers']!.upsert).toEqual({ method: 'PUT', path: '/c/{id}' });
    expect(c.tables[0]!.deliver).toBe('every');
  });

  it('refuses what an API cannot be: a state topic, a TRUNCATE applied, a DELETE upsert; and a secret named twice', () => {
    const found = problems({
      ...doc({ http: { control: 'postgres://u@h/ctl' } }, { http: { upsert: { method: 'DELETE', path: '/c/{id}' } }, state: { schema: 'x.avsc' } }),
      truncate: 'apply',
    });
    expect(found).toContain('destination.tables.0.state: a http destination cannot be read back for a state topic — remove the state topic');
    expect(found).toContain('destination.tables.0.http.upsert.method: DELETE cannot upsert — use PUT, POST or PATCH');
    expect(found).toContain('truncate: a http destination cannot apply a TRUNCATE — use stop or skip');
    const auth = { control: 'postgres://u@h/ctl', auth: { type: 'bearer', token: { env: 'A', file: '/x' } } };
    expect(problems(doc({ http: auth }, { http: { upsert: { method: 'PUT', path: '/c/{id}' } } }))).toEqual([
      'destination.http.auth.token: name the secret with env (a variable) or file (a path), one of them',
    ]);
  });

  it('refuses a version that travels nowhere, and an etag check with no field to read it from', () => {
    const table = (version: Record<string, unknown>) =>
      doc({ http: { control: 'postgres://u@h/ctl' } }, { http: { upsert: { method: 'PUT', path: '/c/{id}' }, version } });
    expect(problems(table({ check: 'api' }))).toEqual(['destination.tables.0.http.version: name the field or the header the version travels in']);
    expect(problems(table({ header: 'X-Version', check: 'etag' }))).toEqual([
      'destination.tables.0.http.version: check: etag compares the version the record holds: name its field',
    ]);
    expect(validateFlow(table({ field: 'v' }), 'f.yaml').destinationSettings!.tables['crm.customers']!.version).toEqual({
      field: 'v',
      check: 'api',
      staleStatuses: [409, 412],
    });
  });

  describe('a table under policy: authority only, fields the API owns never sent', () => {
    const governed = (policy: Record<string, unknown>, method = 'PATCH') => ({
      ...doc({ system: 'crm', http: { control: 'postgres://u@h/ctl' } }, { policy: 'customer', http: { upsert: { method, path: '/c/{id}' } } }),
      source: { brokers: ['127.0.0.1:19092'], decoding: 'json', system: 'app' },
      policies: { customer: policy },
    });
    const crmKeepsTier = { default: { owner: 'app', strategy: 'local_wins' }, fields: { tier: { owner: 'crm' } } };

    it('sends the fields the source system writes, and none the API owns; a delete only when the source may delete', () => {
      const c = validateFlow(governed(crmKeepsTier), 'f.yaml');
      const table = c.destinationSettings!.tables['crm.customers']!;
      expect(table.authority).toEqual({ entity: 'customer', keeper: 'crm', fields: { tier: false }, others: true });
      expect(sendsDeletes(table.authority!)).toBe(true);
      const body = changeRequest(table, mapping, ch(7, 'u', { id: 7, email: 'a@b', tier: 'gold', name: 'Ada' }, 5n))!.body!;
      expect(JSON.parse(body)).toEqual({ id: 7, mail: 'a@b', name: 'Ada' });

      // The API owns the record; the source only its email: a source delete is not sent.
      const crmOwns = validateFlow(
        governed({ default: { owner: 'crm', strategy: 'local_wins' }, fields: { email: { owner: 'app' }, id: { owner: 'app' } } }),
        'f.yaml',
      );
      const owned = crmOwns.destinationSettings!.tables['crm.customers']!;
      expect(JSON.parse(changeRequest(owned, { ...mapping, rename: {} }, ch(7, 'u', { id: 7, email: 'a@b', tier: 'gold' }, 5n))!.body!)).toEqual({
        id: 7,
        email: 'a@b',
      });
      expect(changeRequest(owned, mapping, ch(7, 'd', null, 6n))).toBeUndefined();
    });

    it('refuses a PUT that would replace what the API owns, a field two systems write, validators, and a policy that leaves the source nothing', () => {
      expect(problems(governed(crmKeepsTier, 'PUT'))).toEqual([
        'destination.tables.0.http.upsert.method: PUT replaces the whole record, and policy customer leaves fields to crm — use PATCH, so that they are never overwritten',
      ]);
      // Where the source owns every field, a PUT replaces nothing the API keeps.
      expect(problems(governed({ default: { owner: 'app', strategy: 'local_wins' } }, 'PUT'))).toEqual([]);
      expect(
        problems(
          governed({
            default: { owner: 'app', strategy: 'local_wins' },
            fields: { tier: { owner: 'crm', writers: ['app'], strategy: 'manual_review' }, email: { validators: [{ format: 'email' }] } },
          }),
        ),
      ).toEqual([
        "policies.customer.fields.tier: owned by crm and written by app too — deciding between them needs the API's current value, which an HTTP destination cannot be read for; make app its owner, or leave app out of its writers",
        'policies.customer.fields.email.validators: an HTTP destination sends values as the source holds them and checks none — remove the validators',
      ]);
      expect(problems(governed({ default: { owner: 'crm', strategy: 'local_wins' } }))).toEqual([
        'policies.customer: gives app no field to write — an HTTP table under it would send nothing; give app the fields it owns',
      ]);
    });
  });

  it('refuses http sections for a database destination', () => {
    expect(
      problems({ ...doc({ url: 'postgres://u@h/d', http: { control: 'postgres://u@h/ctl' } }, { http: { upsert: { method: 'PUT', path: '/c' } } }) }),
    ).toEqual([
      'destination.http: only for an HTTP destination (destination.url is not http:// or https://) — remove it',
      'destination.tables.0.http: only for an HTTP destination — remove it',
    ]);
  });

  it('reads secrets from the environment when the sink opens, and names the variable, never the value, when it is missing', () => {
    process.env.TRUSTSYNC_TEST_TOKEN = 's3cret';
    expect(authHeaders({ type: 'bearer', token: { env: 'TRUSTSYNC_TEST_TOKEN' } })).toEqual({ authorization: 'Bearer s3cret' });
    expect(authHeaders({ type: 'header', name: 'X-Api-Key', value: { env: 'TRUSTSYNC_TEST_TOKEN' } })).toEqual({ 'x-api-key': 's3cret' });
    delete process.env.TRUSTSYNC_TEST_TOKEN;
    expect(() => authHeaders({ type: 'bearer', token: { env: 'TRUSTSYNC_TEST_TOKEN' } })).toThrow(
      'destination.http.auth.token: the environment variable TRUSTSYNC_TEST_TOKEN is not set',
    );
  });
});
