import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import type pg from 'pg';
import type { Kafka } from 'kafkajs';
import { validateFlow } from '../../src/flow/config.js';
import { waitForConvergence } from '../../src/demo/row-compare.js';
import { PACKAGE_DIR } from '../../src/stack/settings.js';
import { endpoints, kafkaClient, waitForRecords } from '../support/capture.js';
import { SyncFixture } from '../support/fixture.js';
import { flowDocument, startFlow } from '../support/flow.js';
import { readStateTopic } from '../support/state.js';
import { waitFor } from '../support/wait.js';

/**
 * A flow with a state topic commits each slice in a Kafka transaction of the partition's own
 * producer. A zombie (a member the group gave up on, still running) that starts that producer again
 * fences the real owner mid-batch: the owner must read the fenced slice again, never go on past it
 * — its later commits would move the offset over changes it never applied.
 */
describe('a state producer fenced mid-batch', () => {
  const f = new SyncFixture('fenced');
  const { schema, destSchema } = f;
  const rows = 300;
  let source: pg.Client;
  let dest: pg.Client;
  let kafka: Kafka;

  beforeAll(async () => {
    ({ source, dest } = await f.open({ demoTables: true }));
    kafka = kafkaClient();
    await source.query(`INSERT INTO ${schema}.customers (id, email, name) SELECT g, 'f' || g || '@example.com', 'F ' || g FROM generate_series(1, $1::int) g`, [
      rows,
    ]);
    const capture = f.captureTables(['customers'], 'json');
    await capture.start();
    const admin = kafka.admin();
    await admin.connect();
    await waitForRecords(admin, capture.topic('customers'), rows);
    await admin.disconnect();
    // Writes slow enough that every partition's first batch is still being written when the zombie comes.
    await dest.query(`CREATE FUNCTION ${destSchema}.slow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(0.01); RETURN NEW; END $$`);
    await dest.query(`CREATE TRIGGER slow BEFORE INSERT OR UPDATE ON ${destSchema}.customers FOR EACH ROW EXECUTE FUNCTION ${destSchema}.slow()`);
  });

  afterAll(async () => {
    await f.close();
    const admin = kafka.admin();
    await admin.connect();
    await admin.deleteTopics({ topics: [`state.${destSchema}.customers`] }).catch(() => undefined);
    await admin.disconnect();
  });

  it('reads the fenced slice again: the destination and the state topic end with every row', async () => {
    const topic = f.capture!.topic('customers');
    const doc = flowDocument({
      name: schema,
      topics: [{ topic, table: `${destSchema}.customers`, state: { schema: join(PACKAGE_DIR, 'schemas', 'shop.customers.avsc') } } as never],
      extra: { batch: { maxRows: 5, maxWaitMs: 50 } },
    });
    const config = validateFlow({ ...doc, source: { ...(doc.source as object), registryUrl: endpoints.registryCcompatUrl } }, 'flow.yaml');
    f.runner = await startFlow(config);
    const applied = async () => Number((await dest.query(`SELECT count(*) AS n FROM ${destSchema}.customers`)).rows[0].n);
    await waitFor(async () => (await applied()) >= 5, 'the first slices to be written');

    // The zombie: each partition's transactional producer, started again elsewhere.
    const admin = kafka.admin();
    await admin.connect();
    const { topics } = await admin.fetchTopicMetadata({ topics: [topic] });
    await admin.disconnect();
    for (const { partitionId } of topics[0]!.partitions) {
      const zombie = kafka.producer({ transactionalId: `trustsync.${config.flow}.${topic}.${partitionId}`, idempotent: true, maxInFlightRequests: 1 });
      await zombie.connect();
      // A transaction's start registers the transactional id anew: the owner's producer is fenced.
      await (await zombie.transaction()).abort();
      await zombie.disconnect();
    }
    expect(await applied()).toBeLessThan(rows);
    await dest.query(`DROP TRIGGER slow ON ${destSchema}.customers`);

    // Later changes commit past where the fence struck: nothing before them may be lost.
    await source.query(`UPDATE ${schema}.customers SET name = name || ' later' WHERE id % 7 = 0`);
    await waitForConvergence(source, dest, f.pairs(['customers']), 120_000);

    const state = await readStateTopic(kafka, `state.${destSchema}.customers`, schema);
    const present = [...state.latest].filter(([, v]) => v !== null).map(([k]) => k);
    expect(present.length).toBe(rows);
  });
});
