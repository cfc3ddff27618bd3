import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type pg from 'pg';
import { stringify } from 'yaml';
import type { Kafka } from 'kafkajs';
import { runWorkload } from '../../src/demo/workload.js';
import { PACKAGE_DIR } from '../../src/stack/settings.js';
import { validateFlow } from '../../src/flow/config.js';
import { waitForConvergence } from '../../src/demo/row-compare.js';
import { endpoints, kafkaClient, pgClient } from '../support/capture.js';
import { SyncFixture } from '../support/fixture.js';
import { flowDocument, spawnRun, startFlow } from '../support/flow.js';
import { readStateTopic } from '../support/state.js';

/**
 * Analysts read compacted state topics with standard tools. Read here the way they would — a plain
 * Kafka consumer and the Confluent registry client, none of trustsync's code — each topic must equal
 * the destination table, deletes included as tombstones, also after trustsync run was killed mid-stream.
 */
describe('compacted Avro state topics', () => {
  const f = new SyncFixture('state');
  const { schema, destSchema } = f;
  const tables = ['customers', 'orders'];
  const dir = mkdtempSync(join(tmpdir(), 'trustsync-state-'));
  const flowFile = join(dir, 'flow.yaml');
  let source: pg.Client;
  let dest: pg.Client;
  let kafka: Kafka;

  const doc = () =>
    flowDocument({
      name: schema,
      topics: f.flowTables(tables).map((t, i) => ({ ...t, state: { schema: join(PACKAGE_DIR, 'schemas', `shop.${tables[i]}.avsc`) } })),
      extra: { batch: { maxRows: 50, maxWaitMs: 50 }, log: { level: 'warn' } },
    });
  const withRegistry = (d: Record<string, unknown>) => ({ ...d, source: { ...(d.source as object), registryUrl: endpoints.registryCcompatUrl } });

  const readState = (topic: string) => readStateTopic(kafka, topic, schema);

  const customersNow = async () =>
    new Map(
      (
        await dest.query(
          `SELECT id::text AS key, id, email, name, tier, balance::text AS balance, profile::text AS profile, notes,
                  (extract(epoch FROM updated_at) * 1000000)::bigint::text AS updated_at
             FROM ${destSchema}.customers`,
        )
      ).rows.map((r) => [
        r.key as string,
        {
          id: Number(r.id),
          email: r.email,
          name: r.name,
          tier: r.tier,
          balance: r.balance,
          profile: r.profile,
          notes: r.notes,
          updated_at: Number(r.updated_at),
        },
      ]),
    );

  const expectStateEqualsDestination = async () => {
    const state = await readState(`state.${destSchema}.customers`);
    const rows = await customersNow();
    const present = new Map([...state.latest].filter(([, v]) => v !== null));
    expect(new Map([...present].sort())).toEqual(new Map([...rows].sort()));
    // Every key the state topic knows but the destination does not was deleted: its last record is a tombstone.
    for (const [key, v] of state.latest) if (!rows.has(key)) expect(v).toBeNull();
    return state;
  };

  beforeAll(async () => {
    ({ source, dest } = await f.open({ demoTables: true }));
    kafka = kafkaClient();
    await runWorkload(source, schema, 150, 11);
    await f.captureTables(tables, 'json').start();
    writeFileSync(flowFile, stringify(withRegistry(doc())));
  });

  afterAll(async () => {
    await f.close();
    const admin = kafka.admin();
    await admin.connect();
    await admin.deleteTopics({ topics: tables.map((t) => `state.${destSchema}.${t}`) }).catch(() => undefined);
    await admin.disconnect();
  });

  it('equals the destination table, read by an independent consumer with the registry, deletes as tombstones', async () => {
    const runner = (f.runner = await startFlow(validateFlow(withRegistry(doc()), flowFile)));
    await runWorkload(source, schema, 150, 12);
    await waitForConvergence(source, dest, f.pairs(tables));
    // The state follows the destination's commit; give the last transaction its moment.
    await new Promise((r) => setTimeout(r, 1500));
    const state = await expectStateEqualsDestination();
    expect(state.tombstones).toBeGreaterThan(0);
    await runner.stop();
    f.runner = undefined;
  });

  it('agrees with the destination after trustsync run is killed with SIGKILL while producing state', async () => {
    const start = (): ChildProcess => spawnRun(flowFile, join(dir, 'run.log'));
    const writer = await pgClient('trustsync_source');
    let writing = true;
    const background = (async () => {
      let seed = 900;
      while (writing) await runWorkload(writer, schema, 20, seed++);
    })();
    for (let i = 0; i < 2; i++) {
      const child = start();
      await new Promise((r) => setTimeout(r, 2500 + i * 700));
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
    }
    writing = false;
    await background;
    await writer.end();
    const child = start();
    try {
      await waitForConvergence(source, dest, f.pairs(tables), 120_000);
      await new Promise((r) => setTimeout(r, 2000));
      await expectStateEqualsDestination();
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
  });

  it('registers a compatible schema change as a new version, and stops at start on an incompatible one', async () => {
    const original = JSON.parse(readFileSync(join(PACKAGE_DIR, 'schemas', 'shop.customers.avsc'), 'utf8'));
    const compatible = { ...original, fields: [...original.fields, { name: 'segment', type: ['null', 'string'], default: null }] };
    const incompatible = { ...original, fields: original.fields.map((x: { name: string }) => (x.name === 'id' ? { name: 'id', type: 'string' } : x)) };
    const variant = (name: string, avsc: unknown) => {
      const file = join(dir, `${name}.avsc`);
      writeFileSync(file, JSON.stringify(avsc));
      const d = withRegistry(doc()) as unknown as { destination: { tables: Record<string, unknown>[] } };
      d.destination.tables = [{ ...d.destination.tables[0], state: { schema: file } }];
      return validateFlow(d, flowFile);
    };
    const ok = await startFlow(variant('compatible', compatible));
    await ok.stop();
    const refused = startFlow(variant('incompatible', incompatible));
    await expect(refused).rejects.toThrow(/incompatible\.avsc is not compatible with the schema of state\..*customers already in the registry/);
  });
});
