import { kafkaOptions } from '../../src/kafka/connection.js';
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { validateFlow, loadFlowFile, FlowConfigError, capabilityProblems } from '../../src/flow/config.js';
import { sinkKindFor, supportedSchemes } from '../../src/sink/kinds.js';
import { PACKAGE_DIR } from '../../src/stack/settings.js';

const valid = {
  flow: 'shop',
  source: { brokers: ['127.0.0.1:19092'], decoding: 'json' },
  destination: { url: 'postgres://postgres@127.0.0.1:15432/trustsync_dest', tables: [{ topic: 'cdc.shop.demo.customers', table: 'shop.customers' }] },
};

function problems(doc: unknown): string[] {
  try {
    validateFlow(doc, 'flow.yaml');
  } catch (err) {
    if (err instanceof FlowConfigError) return err.problems;
    throw err;
  }
  return [];
}

describe('flow files are validated once, at start', () => {
  it('fills defaults for a minimal flow', () => {
    const c = validateFlow(valid, 'flow.yaml');
    expect(c.group).toBe('trustsync-shop');
    expect(c.dlqTopic).toBe('trustsync.dlq.shop');
    expect(c.truncate).toBe('stop');
    expect(c.batch).toEqual({ maxRows: 1000, maxWaitMs: 200 });
    expect(c.tables[0]!.table).toEqual({ schema: 'shop', table: 'customers' });
    expect(c.tombstoneRetentionMs).toBe(7 * 86_400_000);
    expect(c.historyRetentionMs).toBe(90 * 86_400_000);
  });

  it('lists every problem at once, each by field path with what to write', () => {
    const list = problems({
      ...valid,
      source: { brokers: ['nohost'], decoding: 'xml' },
      destination: { url: 'mongodb://x', tables: [] },
      batch: { maxRows: 0 },
      extra: true,
    });
    expect(list.some((p) => p.startsWith('source.brokers.0:'))).toBe(true);
    expect(list.some((p) => p.startsWith('source.decoding:') && p.includes('json (Kafka Connect JsonConverter) or avro'))).toBe(true);
    expect(list.some((p) => p.startsWith('destination.url:'))).toBe(true);
    expect(list.some((p) => p.startsWith('destination.tables:'))).toBe(true);
    expect(list.some((p) => p.startsWith('batch.maxRows:'))).toBe(true);
    expect(list.some((p) => p.includes('unknown field extra'))).toBe(true);
  });

  it('names a missing field and asks for it', () => {
    expect(problems({ ...valid, flow: undefined })).toContain('flow: missing — add it');
  });

  it('needs a registry for Avro', () => {
    expect(problems({ ...valid, source: { ...valid.source, decoding: 'avro' } })[0]).toMatch(/^source.registryUrl: missing/);
  });

  it('reads durations in words', () => {
    const c = validateFlow({ ...valid, batch: { maxRows: 10, maxWaitMs: '2s' }, tombstoneRetention: '36h' }, 'f');
    expect(c.batch.maxWaitMs).toBe(2000);
    expect(c.tombstoneRetentionMs).toBe(36 * 3_600_000);
  });

  it('the shipped demo flow is valid', () => {
    const c = loadFlowFile(join(PACKAGE_DIR, 'flows', 'shop.yaml'), {});
    expect(c.tables.map((t) => t.topic)).toEqual(['cdc.shop.demo.customers', 'cdc.shop.demo.orders', 'cdc.shop.demo.trustsync_canary']);
    expect(c.canary).toMatchObject({ sourceTable: { schema: 'demo', table: 'trustsync_canary' }, intervalMs: 10_000 });
    expect(c.kafka).toEqual({ brokers: ['127.0.0.1:19092'] });
  });

  it('the shipped sync flows are valid, both directions under the customer policy', () => {
    const [appToCrm, crmToApp] = ['app-to-crm', 'crm-to-app'].map((f) => loadFlowFile(join(PACKAGE_DIR, 'flows', `${f}.yaml`), {}));
    expect([appToCrm!.sourceSystem, appToCrm!.destinationSystem, crmToApp!.sourceSystem, crmToApp!.destinationSystem]).toEqual(['app', 'crm', 'crm', 'app']);
    expect(appToCrm!.tables[0]).toMatchObject({ topic: 'cdc.app.app.customers', table: { schema: 'crm', table: 'customers' }, policy: 'customers' });
    expect(Object.keys(appToCrm!.policies!)).toEqual(['customers']);
  });
});

describe('tables under a policy', () => {
  const governed = (extra: Record<string, unknown>, table: Record<string, unknown> = { policy: 'customers' }) => ({
    ...valid,
    source: { ...valid.source, system: 'app' },
    destination: { ...valid.destination, system: 'crm', tables: [{ ...valid.destination.tables[0], ...table }] },
    ...extra,
  });
  const policies = { customers: { default: { owner: 'app', strategy: 'local_wins' } } };

  it('need both systems named, different, and a policy that exists', () => {
    expect(problems({ ...valid, destination: { ...valid.destination, tables: [{ ...valid.destination.tables[0], policy: 'customers' }] }, policies })).toEqual([
      'source.system: missing — tables under a policy need the name of the system this flow reads from (e.g. app)',
      'destination.system: missing — tables under a policy need the name of the system this flow writes into (e.g. crm)',
    ]);
    expect(problems(governed({ policies }, { policy: 'orders' }))).toEqual([
      'destination.tables.0.policy: no policy named orders — define it under policies (defined: customers)',
    ]);
    expect(problems({ ...governed({ policies }), destination: { ...governed({}).destination, system: 'app' } })).toEqual([
      'destination.system: app is also the source — a flow connects two different systems',
    ]);
  });

  it('refuse `truncate: apply`: a keyless wipe would delete fields the destination owns', () => {
    expect(problems(governed({ policies, truncate: 'apply' }))).toEqual([
      'truncate: apply wipes whole tables, and shop.customers is under a policy that gives fields to the destination — use stop (the default) or skip',
    ]);
    expect(problems(governed({ policies, truncate: 'skip' }))).toEqual([]);
  });

  it('report policy mistakes by path: unknown systems, strategies without what they need, bad validators', () => {
    expect(
      problems(
        governed({
          policies: {
            customers: {
              default: { owner: 'app', strategy: 'latest_valid_change', validators: [{ format: 'postcode' }] },
              fields: { status: { owner: 'erp', strategy: 'merge' } },
            },
          },
        }),
      ),
    ).toEqual([
      'policies.customers.default.validators.0: not a validator — use { format: email|e164|uuid|iso-date|url }, { enum: [...] }, { pattern: REGEX }, { required: true }, { transitions: { from: [to, ...] } } or { custom: ./module.js#exportedFunction }',
    ]);
    expect(
      problems(
        governed({
          policies: { customers: { default: { owner: 'app', strategy: 'latest_valid_change' }, fields: { status: { owner: 'erp', strategy: 'merge' } } } },
        }),
      ),
    ).toEqual([
      'policies.customers.default: strategy latest_valid_change needs validators — add at least one (e.g. { required: true }) so "valid" means something',
      'policies.customers.fields.status.owner: unknown system erp — this flow connects app, crm',
      'policies.customers.fields.status: strategy merge needs a fallback for values that cannot be combined — add fallback: local_wins (or another strategy)',
    ]);
  });

  it('read policies from a file next to the flow file, and say when it is missing', () => {
    const c = validateFlow(governed({ policies: './policies/customers.yaml' }), join(PACKAGE_DIR, 'flows', 'x.yaml'));
    expect(c.policies!.customers!.fields.status!.strategy).toBe('manual_review');
    expect(problems(governed({ policies: './no-such.yaml' }))[0]).toMatch(/^policies: .*no-such\.yaml cannot be read/);
  });

  it('derive the source table from the topic for reconcile, unless named', () => {
    expect(validateFlow(valid, 'flow.yaml').tables[0]!.sourceTable).toBe('demo.customers');
    expect(
      validateFlow({ ...valid, destination: { ...valid.destination, tables: [{ ...valid.destination.tables[0], sourceTable: 'crm.people' }] } }, 'flow.yaml')
        .tables[0]!.sourceTable,
    ).toBe('crm.people');
  });

  it('tells a value of the wrong type from a missing one', () => {
    const found = problems({ ...valid, source: { ...valid.source, brokers: '127.0.0.1:19092' }, batch: { maxRows: 'lots' } });
    expect(found).toEqual([
      'source.brokers: string "127.0.0.1:19092" where a list belongs — write it as one',
      'batch.maxRows: string "lots" where a number belongs — write it as one',
    ]);
    expect(problems({ ...valid, destination: { ...valid.destination, tables: undefined } })[0]).toMatch(/^destination\.tables: missing — add it/);
  });

  it('reach brokers over TLS and SASL with secrets named, never given, and refuse a client certificate without its key', () => {
    const source = {
      ...valid.source,
      tls: { ca: '/etc/ca.pem', checkHostname: false },
      sasl: { mechanism: 'scram-sha-256', username: 'app', password: { env: 'KAFKA_PASSWORD' } },
    };
    process.env.KAFKA_PASSWORD = 'pw';
    try {
      const { kafka } = validateFlow({ ...valid, source }, 'flow.yaml');
      expect(kafkaOptions({ ...kafka, tls: undefined })).toEqual({
        brokers: ['127.0.0.1:19092'],
        sasl: { mechanism: 'scram-sha-256', username: 'app', password: 'pw' },
      });
      expect(() => kafkaOptions(kafka)).toThrow('source.tls.ca: /etc/ca.pem cannot be read (ENOENT)');
    } finally {
      delete process.env.KAFKA_PASSWORD;
    }
    expect(() => kafkaOptions({ brokers: ['b:1'], sasl: { mechanism: 'plain', username: 'u', password: { env: 'NO_SUCH_VARIABLE' } } })).toThrow(
      'source.sasl.password: the environment variable NO_SUCH_VARIABLE is not set',
    );
    expect(problems({ ...valid, source: { ...valid.source, tls: { cert: '/c.pem' } } })).toEqual([
      'source.tls: a client certificate needs its key, and a key its certificate: give cert and key both',
    ]);
    expect(problems({ ...valid, source: { ...valid.source, sasl: { mechanism: 'gssapi', username: 'u', password: { env: 'P' } } } })[0]).toMatch(
      /^source\.sasl\.mechanism: /,
    );
  });

  describe('the destination is checked against what its kind can do', () => {
    const withUrl = (url: string) => ({ ...valid, destination: { ...valid.destination, url } });

    it('refuses an unsupported scheme in one line naming the field, the scheme and the fix, never the password', () => {
      const found = problems(withUrl('mongodb://app:s3cret@127.0.0.1:27017/shop'));
      expect(found).toHaveLength(1);
      expect(found[0]).toBe(
        `destination.url: mongodb:// is not a destination trustsync writes — use ${supportedSchemes()} — expected postgres://user@host:port/database, mariadb://user@host:port/database, or an API base URL https://host/path`,
      );
      expect(found.join('\n')).not.toContain('s3cret');
      expect(problems(withUrl('127.0.0.1:5432/shop'))[0]).toMatch(/^destination\.url: a URL without a scheme is not a destination/);
      expect(problems(withUrl('postgres://u@127.0.0.1:5432/db'))).toEqual([]);
      expect(problems(withUrl('mariadb://u@127.0.0.1:3306/db'))).toEqual([]);
      expect(problems(withUrl('mysql://u@127.0.0.1:3306/db'))).toEqual([]);
    });

    it('names each thing a flow asks that its kind of destination cannot do', () => {
      const doc = {
        truncate: 'apply' as const,
        destination: {
          url: 'x://',
          tables: [
            { topic: 't1', table: 'a.one', policy: 'customer', rename: {}, createIfMissing: true },
            { topic: 't2', table: 'a.two', state: { schema: 'two.avsc' }, rename: {}, createIfMissing: true },
          ],
        },
      };
      const plain = {
        kind: 'plain',
        capabilities: { transactions: true, governance: false, fieldAuthority: false, truncate: false, reconcile: false, everyChange: false },
      };
      expect(capabilityProblems(doc as never, plain)).toEqual([
        'destination.tables.0.policy: a plain destination cannot keep field-level policies — remove the policy, or write a.one to a PostgreSQL destination',
        'destination.tables.1.state: a plain destination cannot be read back for a state topic — remove the state topic',
        'truncate: a plain destination cannot apply a TRUNCATE — use stop or skip',
      ]);
      expect(capabilityProblems(doc as never, sinkKindFor('postgres://h/db')!)).toEqual([]);
      // MariaDB keeps no field-level policy state and applies no TRUNCATE; its rows can feed a state topic.
      expect(capabilityProblems(doc as never, sinkKindFor('mariadb://h/db')!)).toEqual([
        'destination.tables.0.policy: a mariadb destination cannot keep field-level policies — remove the policy, or write a.one to a PostgreSQL destination',
        'truncate: a mariadb destination cannot apply a TRUNCATE — use stop or skip',
      ]);
    });
  });
});
