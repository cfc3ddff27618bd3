import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import type { Kafka } from 'kafkajs';
import type { FlowRunner } from '../../src/flow/run-flow.js';
import { endpoints, kafkaClient, pgClient, settings, uniqueName } from '../support/capture.js';
import { CommitCut } from '../support/commit-cut.js';
import { flowConfig, startFlow } from '../support/flow.js';
import { waitFor } from '../support/wait.js';
import { debeziumJson } from '../support/events.js';

const change = (schema: string, op: 'c' | 'u', id: number, v: string, lsn: number) => debeziumJson(schema, 'things', op, id, v, lsn);

/**
 * A batch whose COMMIT the destination made durable but never acknowledged (the connection dropped
 * on the way back) is retried: its write is then a duplicate, and its decisions must not be told twice.
 */
describe.each(['plain', 'governed'] as const)('a COMMIT that landed unacknowledged (%s)', (mode) => {
  const name = uniqueName(`unack_${mode}`);
  const topic = `${name}.things`;
  const table = `${name}.things`;
  const cut = new CommitCut(settings.ports.postgres);
  let kafka: Kafka;
  let dest: pg.Client;
  let runner: FlowRunner | undefined;

  const send = async (...messages: ReturnType<typeof change>[]) => {
    const producer = kafka.producer();
    await producer.connect();
    await producer.send({ topic, messages });
    await producer.disconnect();
  };
  const valueAtDestination = async () => (await dest.query<{ v: string }>(`SELECT v FROM ${table} WHERE id = 1`).catch(() => ({ rows: [] }))).rows[0]?.v;

  beforeAll(async () => {
    kafka = kafkaClient();
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true });
    await admin.disconnect();
    dest = await pgClient('trustsync_dest');
    const port = await cut.listen();
    const destinationUrl = endpoints.postgresUrl('trustsync_dest').replace(`:${settings.ports.postgres}/`, `:${port}/`);
    const tables = [{ topic, table, createIfMissing: true, ...(mode === 'governed' ? { policy: 'things' } : {}) }];
    const underPolicy = {
      source: { brokers: endpoints.kafkaBrokers, decoding: 'json', system: 'app' },
      policies: { things: { default: { owner: 'app', writers: ['app', 'crm'], strategy: 'latest_valid_change', validators: [{ required: true }] } } },
    };
    await send(change(name, 'c', 1, 'first', 108));
    runner = await startFlow(
      flowConfig({
        name,
        topics: [],
        extra: { destination: { url: destinationUrl, tables, ...(mode === 'governed' ? { system: 'crm' } : {}) }, ...(mode === 'governed' ? underPolicy : {}) },
      }),
    );
    await waitFor(async () => (await valueAtDestination()) === 'first', 'the first change at the destination');
  });

  afterAll(async () => {
    await runner?.stop();
    await cut.close();
    await dest?.query(`DROP SCHEMA IF EXISTS ${name} CASCADE`);
    await dest?.query('DELETE FROM trustsync.history WHERE flow = $1', [name]);
    await dest?.end();
  });

  it('writes the change once, tells each decision once, and keeps flowing', async () => {
    cut.arm();
    await send(change(name, 'u', 1, 'second', 208));
    await waitFor(async () => cut.cut === 1 && (await valueAtDestination()) === 'second', 'the second change, committed without its acknowledgement');
    // The retry ran (the flow counted it), after which a third change still flows.
    await send(change(name, 'u', 1, 'third', 308));
    await waitFor(async () => (await valueAtDestination()) === 'third', 'the third change after the retry');
    expect(await runner!.metrics.retries.get().then((m) => m.values.reduce((n, x) => n + x.value, 0))).toBeGreaterThanOrEqual(1);
    const { rows } = await dest.query<{ position: string; decision: string; n: number }>(
      `SELECT position::text, decision, count(*)::int AS n FROM trustsync.history WHERE flow = $1 AND key IS NOT NULL AND position IS NOT NULL
        GROUP BY position, decision ORDER BY position, decision`,
      [name],
    );
    // Each change's decision is on record once: no second "applied", and no "duplicate" of the batch's own write.
    expect(rows.map((r) => [r.decision, r.n])).toEqual([
      ['applied', 1],
      ['applied', 1],
      ['applied', 1],
    ]);
  });
});
