import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TruncateStopped } from '../../src/model/errors.js';
import { createDecoder, type FlowRunner } from '../../src/flow/run-flow.js';
import { waitForConvergence } from '../../src/demo/row-compare.js';
import { SyncFixture } from '../support/fixture.js';
import { flowConfig, flowDocument, startFlow } from '../support/flow.js';
import { validateFlow } from '../../src/flow/config.js';
import { readStateTopic } from '../support/state.js';
import { endpoints, kafkaClient, readRecords } from '../support/capture.js';
import { waitFor } from '../support/wait.js';
import { explainKey } from '../../src/sink/postgres/explain-sql.js';
import { join } from 'node:path';
import { PACKAGE_DIR } from '../../src/stack/settings.js';

/** A TRUNCATE follows the flow's policy: by default it stops and reports, never silently wipes. */
describe('TRUNCATE at the source', () => {
  const f = new SyncFixture('trunc');
  const tables = ['orders'];
  let stopper: FlowRunner | undefined;

  beforeAll(async () => {
    await f.open({ demoTables: true });
    await f.source.query(`INSERT INTO ${f.schema}.customers (id, email, name) VALUES (1, 'a@x', 'A')`);
    await f.source.query(`INSERT INTO ${f.schema}.orders (id, customer_id, amount) SELECT g, 1, g FROM generate_series(1, 10) g`);
    // Debezium skips truncates unless told otherwise.
    await f.captureTables(tables, 'json', { SKIPPED_OPERATIONS: 'none' }).start();
  });

  afterAll(async () => {
    await stopper?.stop();
    await f.close();
    const admin = kafkaClient().admin();
    await admin.connect();
    await admin.deleteTopics({ topics: [`state.${f.destSchema}.orders`] }).catch(() => undefined);
    await admin.disconnect();
  });

  it('is applied under `truncate: apply`, its state topic turns every wiped row into a tombstone, and the flow goes on', async () => {
    const doc = flowDocument({
      name: `${f.schema}_apply`,
      topics: f.flowTables(tables).map((t) => ({ ...t, state: { schema: join(PACKAGE_DIR, 'schemas', 'shop.orders.avsc') } })),
      extra: { truncate: 'apply' },
    }) as { source: Record<string, unknown> };
    f.runner = await startFlow(validateFlow({ ...doc, source: { ...doc.source, registryUrl: endpoints.registryCcompatUrl } }, 'apply.yaml'));
    await waitForConvergence(f.source, f.dest, f.pairs(tables));
    // A streamed change from before the TRUNCATE, for the next test to deliver late.
    await f.source.query(`UPDATE ${f.schema}.orders SET amount = 55 WHERE id = 5`);
    await waitForConvergence(f.source, f.dest, f.pairs(tables));
    await f.source.query(`TRUNCATE ${f.schema}.orders`);
    await f.source.query(`INSERT INTO ${f.schema}.orders (id, customer_id, amount) VALUES (100, 1, 5)`);
    await waitForConvergence(f.source, f.dest, f.pairs(tables));
    expect((await f.dest.query(`SELECT id::int FROM ${f.destSchema}.orders`)).rows).toEqual([{ id: 100 }]);
    const kafka = kafkaClient();
    let state = await readStateTopic(kafka, `state.${f.destSchema}.orders`, f.schema);
    for (let i = 0; i < 20 && state.latest.get('100') === undefined; i++) state = await readStateTopic(kafka, `state.${f.destSchema}.orders`, f.schema);
    expect([...state.latest].filter(([, v]) => v !== null).map(([k]) => k)).toEqual(['100']);
    expect(state.tombstones).toBe(10);
  });

  it('is applied at its position: delivered again after a later insert, or behind a change from before it, it changes nothing', async () => {
    const topic = f.capture!.topic('orders');
    // What Debezium captured: 10 snapshot reads, the update of 5, the TRUNCATE, the insert of 100.
    const records = await readRecords(kafkaClient(), topic, 13);
    const decoder = createDecoder(f.runner!.config);
    const find = async (kind: 'truncate' | 'u') => {
      for (const r of records) {
        const d = await decoder.decode({ key: r.key, value: r.value, origin: { topic, partition: r.partition, offset: r.offset } });
        if (d.kind === kind || (d.kind === 'change' && d.op === kind)) return r;
      }
      throw new Error(`no ${kind} record in ${topic}`);
    };
    const [truncate, update] = [await find('truncate'), await find('u')];
    const metrics = f.runner!.metrics;
    const [duplicatesBefore, staleBefore] = [await metrics.total('skipped', 'duplicate'), await metrics.total('skipped', 'stale')];
    // As a partition that runs behind would deliver them: the TRUNCATE after the insert of 100 was
    // applied, then the update from before the TRUNCATE, each on another partition than before.
    const kafka = kafkaClient();
    const admin = kafka.admin();
    await admin.connect();
    const partitions = (await admin.fetchTopicOffsets(topic)).length;
    await admin.disconnect();
    // As if the first delivery's tombstones had never reached the state topic (the flow stopped after
    // the TRUNCATE's commit, before its state and offsets were): row 3 is back there.
    const stateTopic = `state.${f.destSchema}.orders`;
    const row3 = (await readStateTopic(kafka, stateTopic, f.schema)).lastRows.get('3')!;
    const producer = kafka.producer();
    await producer.connect();
    try {
      await producer.send({ topic: stateTopic, messages: [{ key: '3', value: row3.value, partition: row3.partition }] });
      for (const r of [truncate, update]) await producer.send({ topic, messages: [{ key: r.key, value: r.value, partition: (r.partition + 1) % partitions }] });
    } finally {
      await producer.disconnect();
    }
    await waitFor(
      async () => (await metrics.total('skipped', 'duplicate')) > duplicatesBefore && (await metrics.total('skipped', 'stale')) > staleBefore,
      'the TRUNCATE and the update delivered again',
      30_000,
    );
    expect((await f.dest.query(`SELECT id::int, amount::int FROM ${f.destSchema}.orders`)).rows).toEqual([{ id: 100, amount: 5 }]);
    // The TRUNCATE delivered again tells its tombstones again.
    let state = await readStateTopic(kafka, stateTopic, f.schema);
    for (let i = 0; i < 20 && state.latest.get('3') !== null; i++) state = await readStateTopic(kafka, stateTopic, f.schema);
    expect([...state.latest].filter(([, v]) => v !== null).map(([k]) => k)).toEqual(['100']);
    // The story of 5 tells why the late update was refused.
    const story = await explainKey(f.dest, `${f.destSchema}.orders`, '5');
    expect(story.timeline.map((t) => `${t.decision} ${t.op}`).slice(-2)).toEqual(['truncated t', 'skipped-stale u']);
    expect(story.timeline.at(-1)!.reason).toBe('a TRUNCATE of the table after this change is applied');
    expect(story.believed).toBeNull();
    expect(story.timeline.filter((t) => t.op === 't')).toHaveLength(1);
    // The TRUNCATE delivered again is on record as the duplicate it is.
    const table = await explainKey(f.dest, `${f.destSchema}.orders`, '*');
    expect(table.timeline.map((t) => `${t.decision} ${t.reason}`)).toEqual([
      'truncated TRUNCATE, truncate policy apply',
      'skipped-duplicate this TRUNCATE is already applied',
    ]);
  });

  it('stops the flow with the reason and the fix under the default policy', async () => {
    stopper = await startFlow(flowConfig({ name: `${f.schema}_stop`, topics: f.flowTables(tables) }));
    const err = await Promise.race([
      stopper.done.then(
        () => 'stopped cleanly',
        (e: unknown) => e,
      ),
      new Promise((r) => setTimeout(() => r('kept running'), 60_000)),
    ]);
    expect(err).toBeInstanceOf(TruncateStopped);
    expect((err as TruncateStopped).message).toContain(`TRUNCATE of ${f.schema}.orders`);
    expect((err as TruncateStopped).fix).toContain('truncate: apply');
    stopper = undefined;
  });
});
