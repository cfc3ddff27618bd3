import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TruncateStopped } from '../../src/model/errors.js';
import type { FlowRunner } from '../../src/flow/run-flow.js';
import { waitForConvergence } from '../../src/reconcile/row-compare.js';
import { SyncFixture } from '../support/fixture.js';
import { flowConfig, flowDocument, startFlow } from '../support/flow.js';
import { validateFlow } from '../../src/flow/config.js';
import { readStateTopic } from '../support/state.js';
import { endpoints, kafkaClient } from '../support/capture.js';
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

  it('stops the flow with the reason and the fix under the default policy', async () => {
    stopper = await startFlow(flowConfig({ name: `${f.schema}_stop`, topics: f.flowTables(tables) }));
    const err = await Promise.race([stopper.done.then(() => 'stopped cleanly', (e: unknown) => e), new Promise((r) => setTimeout(() => r('kept running'), 60_000))]);
    expect(err).toBeInstanceOf(TruncateStopped);
    expect((err as TruncateStopped).message).toContain(`TRUNCATE of ${f.schema}.orders`);
    expect((err as TruncateStopped).fix).toContain('truncate: apply');
    stopper = undefined;
  });
});
