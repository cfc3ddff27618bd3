import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { runWorkload } from '../../src/demo/workload.js';
import { waitForConvergence } from '../../src/demo/row-compare.js';
import { validateFlow } from '../../src/flow/config.js';
import { STACK_KAFKA_USER } from '../../src/stack/kafka.js';
import { PACKAGE_DIR } from '../../src/stack/settings.js';
import { stackCertificates } from '../../src/stack/tls.js';
import { endpoints, kafkaClient, settings } from '../support/capture.js';
import { readStateTopic } from '../support/state.js';
import { trustsync } from '../support/cli.js';
import { SyncFixture } from '../support/fixture.js';
import { flowDocument, startFlow } from '../support/flow.js';

/**
 * A flow that reaches Kafka over TLS with SASL (the stack's SASL_SSL listener), or with a client
 * certificate (its SSL listener, which requires one), and PostgreSQL over TLS checked against the
 * stack's CA: the destination ends equal to the source, the server says the sessions were
 * encrypted, and a password, a certificate or a CA that is wrong is one line naming the field.
 */
describe('secured connections: Kafka SASL_SSL and mutual TLS, PostgreSQL TLS', () => {
  const f = new SyncFixture('secured');
  const tls = stackCertificates(settings);
  const { kafkaSasl, kafkaTls, postgres } = settings.ports;
  const dir = mkdtempSync(join(tmpdir(), 'trustsync-secured-'));
  const tables = ['customers', 'orders'];
  const destination = `postgres://postgres@127.0.0.1:${postgres}/trustsync_dest?sslmode=verify-full&sslrootcert=${tls.ca}`;
  const sasl = (mechanism: string, password = 'KAFKA_PASSWORD') => ({
    brokers: [`127.0.0.1:${kafkaSasl}`],
    tls: { ca: tls.ca },
    sasl: { mechanism, username: STACK_KAFKA_USER.username, password: { env: password } },
  });
  /** The flow file as a user writes it, with `source` reaching the brokers as given. */
  const flowFile = (name: string, source: Record<string, unknown>, url = destination) => {
    const doc = flowDocument({ name: `${f.schema}-${name}`, topics: f.flowTables(tables), destinationUrl: url });
    const file = join(dir, `${name}.yaml`);
    writeFileSync(file, stringify({ ...doc, source: { ...(doc.source as object), ...source } }));
    return file;
  };
  const env = { KAFKA_PASSWORD: STACK_KAFKA_USER.password, WRONG_PASSWORD: 'not-the-password' };

  beforeAll(async () => {
    process.env.KAFKA_PASSWORD = STACK_KAFKA_USER.password;
    await f.open({ demoTables: true });
    await runWorkload(f.source, f.schema, 60, 71);
    await f.captureTables(tables, 'json').start();
  });

  afterAll(async () => {
    delete process.env.KAFKA_PASSWORD;
    await f.close();
  });

  it('SCRAM-SHA-512 over TLS into PostgreSQL over TLS (verify-full): the destination equals the source, every session encrypted, the state topic and lag over the same listener', async () => {
    // customers also into a compacted Avro state topic, produced over the same listener.
    const topics = f.flowTables(tables).map((t, i) => (i === 0 ? { ...t, state: { schema: join(PACKAGE_DIR, 'schemas', 'shop.customers.avsc') } } : t));
    const config = validateFlow(
      {
        ...flowDocument({ name: `${f.schema}-scram`, topics, destinationUrl: destination }),
        source: { decoding: 'json', registryUrl: endpoints.registryCcompatUrl, ...sasl('scram-sha-512') },
      },
      'scram.yaml',
    );
    f.runner = await startFlow(config);
    await runWorkload(f.source, f.schema, 60, 72);
    await waitForConvergence(f.source, f.dest, f.pairs(tables), 90_000);
    // PostgreSQL's own account of the flow's sessions: each one TLS.
    const { rows } = await f.dest.query<{ ssl: boolean }>('SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name = $1', [
      `trustsync:${config.flow}`.slice(0, 63),
    ]);
    expect(rows.length).toBeGreaterThan(0);
    expect(rows.every((r) => r.ssl)).toBe(true);
    await f.runner.stop();
    f.runner = undefined;
    const ids = (await f.dest.query<{ id: string }>(`SELECT id::text FROM ${f.destSchema}.customers`)).rows.map((r) => r.id).sort();
    const state = await readStateTopic(kafkaClient(), `state.${f.destSchema}.customers`, config.group);
    expect(
      [...state.latest]
        .filter(([, v]) => v !== null)
        .map(([k]) => k)
        .sort(),
    ).toEqual(ids);

    // trustsync lag reaches the brokers as the flow file says, and judges the flow's group.
    const r = await trustsync(['lag', '--config', flowFile('scram', sasl('scram-sha-512')), '--json', '--samples', '1'], env);
    expect(r.stderr).toBe('');
    const [group] = JSON.parse(r.stdout) as { group: string; status: string; totalLag: number }[];
    expect(group).toMatchObject({ group: config.group, totalLag: 0 });
  });

  it('PLAIN and SCRAM-SHA-256 on the same listener, and a client certificate on the listener that requires one', async () => {
    for (const source of [
      sasl('plain'),
      sasl('scram-sha-256'),
      { brokers: [`127.0.0.1:${kafkaTls}`], tls: { ca: tls.ca, cert: tls.clientCert, key: { file: tls.clientKey } } },
    ]) {
      const r = await trustsync(['lag', '--config', flowFile('listeners', source), '--json', '--samples', '1'], env);
      // The flow never ran: its group has no commits (ERR, exit 2), which only the brokers could say.
      expect({ source: source.brokers, stderr: r.stderr, status: JSON.parse(r.stdout)[0].status }).toEqual({
        source: source.brokers,
        stderr: '',
        status: 'ERR',
      });
    }
  });

  it('a wrong password, a missing client certificate, a broker or database certificate not trusted: one line naming the field, exit 2, at once', async () => {
    const wrongPassword = await trustsync(['run', '--config', flowFile('wrong-password', sasl('scram-sha-512', 'WRONG_PASSWORD'))], env);
    expect(wrongPassword.status).toBe(2);
    expect(wrongPassword.stderr).toMatch(/source\.sasl: the brokers 127\.0\.0\.1:\d+ refused scram-sha-512 user trustsync: wrong username or password/);
    expect(wrongPassword.stderr).not.toContain('not-the-password');

    const noCertificate = await trustsync(['run', '--config', flowFile('no-certificate', { brokers: [`127.0.0.1:${kafkaTls}`], tls: { ca: tls.ca } })], env);
    expect(noCertificate.status).toBe(2);
    expect(noCertificate.stderr).toMatch(/source\.tls: the brokers 127\.0\.0\.1:\d+ refused the TLS handshake \(alert \w+[ \w]*\): no client certificate/);

    const untrustedBroker = await trustsync(['run', '--config', flowFile('untrusted-broker', { ...sasl('scram-sha-512'), tls: { ca: tls.clientCert } })], env);
    expect(untrustedBroker.status).toBe(2);
    expect(untrustedBroker.stderr).toMatch(/source\.tls: the certificate of 127\.0\.0\.1:\d+ is not trusted \(UNABLE_TO_VERIFY_LEAF_SIGNATURE\)/);

    // The client certificate is signed by the stack's CA, not a CA: trusting it alone trusts no server.
    const wrongCa = await trustsync(['run', '--config', flowFile('wrong-ca', sasl('scram-sha-512'), destination.replace(tls.ca, tls.clientCert))], env);
    expect(wrongCa.status).toBe(2);
    expect(wrongCa.stderr).toMatch(/TLS to the server failed \((UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT\w*|SELF_SIGNED_CERT_IN_CHAIN)\)/);
    expect(wrongCa.stderr).toMatch(/sslrootcert/);
    for (const r of [wrongPassword, noCertificate, untrustedBroker, wrongCa]) expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});
