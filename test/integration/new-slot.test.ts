import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitForConvergence } from '../../src/demo/row-compare.js';
import { SyncFixture } from '../support/fixture.js';
import { flowConfig, startFlow } from '../support/flow.js';
import { SourceCapture, kafkaClient, waitForRecords } from '../support/capture.js';

/**
 * A source captured anew (a new connector, so a new replication slot) while the destination already
 * holds what the old connector delivered. Debezium gives the new slot's first transaction no last
 * commit LSN; it must still rank above every change committed before it.
 */
describe('a new replication slot on a source the destination already follows', () => {
  const f = new SyncFixture('newslot');
  let second: SourceCapture | undefined;

  beforeAll(async () => {
    await f.open({ demoTables: true });
  });

  afterAll(async () => {
    await f.runner?.stop();
    await second?.stop();
    await f.close();
  });

  it("applies the new slot's first transaction instead of skipping it as stale", async () => {
    const tables = ['customers'];
    await f.captureTables(tables, 'json').start();
    // Several transactions through the old slot: the stored positions carry commit LSNs.
    for (let id = 1; id <= 5; id++)
      await f.source.query(`INSERT INTO ${f.schema}.customers (id, email, name) VALUES ($1, $2, $3)`, [id, `c${id}@example.com`, `Customer ${id}`]);
    await f.source.query(`UPDATE ${f.schema}.customers SET tier = 'silver'`);
    f.runner = await startFlow(flowConfig({ name: `${f.schema}_old`, topics: f.flowTables(tables) }));
    await waitForConvergence(f.source, f.dest, f.pairs(tables));
    await f.runner.stop();
    f.runner = undefined;
    await f.capture!.stop();

    second = new SourceCapture(`${f.schema}_new`, f.schema, tables, 'json');
    await second.start();
    const admin = kafkaClient().admin();
    await admin.connect();
    await waitForRecords(admin, second.topic('customers'), 5); // the new slot's snapshot
    // One transaction: the first the new slot streams.
    await f.source.query(`UPDATE ${f.schema}.customers SET tier = 'gold'`);
    await waitForRecords(admin, second.topic('customers'), 10);
    await admin.disconnect();

    f.runner = await startFlow(flowConfig({ name: `${f.schema}_new`, topics: [{ topic: second.topic('customers'), table: `${f.destSchema}.customers` }] }));
    await waitForConvergence(f.source, f.dest, f.pairs(tables));
    expect((await f.dest.query(`SELECT DISTINCT tier FROM ${f.destSchema}.customers`)).rows).toEqual([{ tier: 'gold' }]);
  });
});
