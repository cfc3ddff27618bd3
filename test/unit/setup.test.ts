import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { initFlow } from '../../src/flow/init-flow.js';
import { nearMatches } from '../../src/shared/near-match.js';
import type { CaptureReadiness, CapturedTable } from '../../src/sink/source.js';

const table = (t: string, over: Partial<CapturedTable> = {}): CapturedTable => ({
  table: { schema: 'shop', table: t },
  exists: true,
  keyColumns: ['id'],
  columns: ['id', 'name'],
  replicaIdentity: 'default',
  outOfLine: [],
  ...over,
});
const ready = (tables: CapturedTable[]): CaptureReadiness => ({
  logDecoding: { ok: true, detail: 'wal_level=logical' },
  replication: { ok: true, detail: 'user app may stream changes (REPLICATION)' },
  tables,
});
const options = {
  name: 'shop',
  sourceUrl: 'postgres://app:s3cret@db.internal:5432/shop',
  brokers: ['k:9092'],
  destinationUrl: 'postgres://writer:0ther@dw:5432/dw',
};

describe('trustsync init', () => {
  it('writes a flow and a Debezium connector for the tables, with the passwords left to the environment', () => {
    const r = initFlow(ready([table('customers', { outOfLine: ['notes'] }), table('orders')]), options);
    expect(r.blocking).toEqual([]);
    expect(r.advice).toEqual([expect.stringMatching(/^shop\.customers: notes may be stored out of line \(TOAST\)/) as unknown]);
    const flow = parse(r.flow) as { source: { database: string }; destination: { url: string; tables: unknown[] } };
    expect(flow.source.database).toBe('postgres://app:${SOURCE_DB_PASSWORD}@db.internal:5432/shop');
    expect(flow.destination.url).toBe('postgres://writer:${DESTINATION_DB_PASSWORD}@dw:5432/dw');
    expect(flow.destination.tables).toEqual([
      { topic: 'cdc.shop.shop.customers', table: 'shop.customers', sourceTable: 'shop.customers' },
      { topic: 'cdc.shop.shop.orders', table: 'shop.orders', sourceTable: 'shop.orders' },
    ]);
    expect(r.connector.config).toMatchObject({
      'database.hostname': 'db.internal',
      'database.user': 'app',
      'database.password': '${SOURCE_DB_PASSWORD}',
      'table.include.list': 'shop.customers,shop.orders',
      'topic.prefix': 'cdc.shop',
      'slot.name': 'trustsync_shop',
    });
    expect(`${r.flow}${JSON.stringify(r.connector)}`).not.toMatch(/s3cret|0ther/);
  });

  it('refuses what a capture cannot follow: no key, no replica identity, a missing table, no logical decoding', () => {
    const r = initFlow(
      {
        ...ready([table('log', { keyColumns: [] }), table('quiet', { replicaIdentity: 'nothing' }), table('gone', { exists: false })]),
        logDecoding: { ok: false, detail: 'wal_level=replica' },
      },
      options,
    );
    expect(r.blocking).toEqual([
      'the source has wal_level=replica — set wal_level = logical and restart it',
      "shop.log has no primary key: Debezium's records would have no key to order by — ALTER TABLE shop.log ADD PRIMARY KEY (…)",
      'shop.quiet has REPLICA IDENTITY NOTHING: its updates and deletes would not be captured — ALTER TABLE shop.quiet REPLICA IDENTITY DEFAULT',
      'shop.gone does not exist at the source — name an existing table as schema.table',
    ]);
  });
});

describe('near matches', () => {
  it('suggests what a typo meant, nearest first, and nothing for a name unlike any', () => {
    const topics = ['cdc.shop.demo.customers', 'cdc.shop.demo.orders', 'cdc.shop.demo.customer_notes'];
    expect(nearMatches('cdc.shop.demo.customer', topics)).toEqual(['cdc.shop.demo.customers']);
    expect(nearMatches('cdc.shop.demo.order', topics)).toEqual(['cdc.shop.demo.orders']);
    expect(nearMatches('payments', topics)).toEqual([]);
    // One long name is not a typo of another with the same prefix.
    expect(nearMatches('cdc.shop.demo.customer', ['cdc.shop.demo.orders'])).toEqual([]);
    expect(nearMatches('cdc.shop.demo.orders', topics)).toEqual([]);
  });
});
