import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import type { Admin, Kafka } from 'kafkajs';
import { avroSchemaRegistry } from '../../src/decode/avro-registry.js';
import { createDemoSchema, largeNote } from '../../src/demo/schema.js';
import { SourceCapture, endpoints, kafkaClient, pgClient, readRecords, uniqueName, waitForRecords, type ReadRecord, type Variant } from '../support/capture.js';

/**
 * The ground every later test stands on: real Debezium events from a real PostgreSQL,
 * in real Kafka topics, keyed by entity id, and (for Avro) decodable through the registry.
 */
describe.each<Variant>(['json', 'avro'])('Debezium capture of PostgreSQL (%s)', (variant) => {
  const schema = uniqueName(`smoke_${variant}`);
  let source: pg.Client;
  let kafka: Kafka;
  let admin: Admin;
  let capture: SourceCapture;
  let records: ReadRecord[];
  const registry = avroSchemaRegistry(endpoints.registryCcompatUrl);

  const decode = async (buf: Buffer | null): Promise<any> => {
    if (buf === null) return null;
    return variant === 'avro' ? registry.decode(buf) : JSON.parse(buf.toString('utf8'));
  };

  beforeAll(async () => {
    source = await pgClient();
    await createDemoSchema(source, schema);
    kafka = kafkaClient();
    admin = kafka.admin();
    await admin.connect();
    capture = new SourceCapture(schema, schema, ['customers', 'orders'], variant);
    await capture.start();
    // 20 keys, each inserted then updated; key 7 deleted.
    for (let id = 1; id <= 20; id++) {
      await source.query(`INSERT INTO ${schema}.customers (id, email, name, notes) VALUES ($1, $2, $3, $4)`, [
        id,
        `c${id}@example.com`,
        `Customer ${id}`,
        largeNote(id, 1),
      ]);
    }
    for (let id = 1; id <= 20; id++) await source.query(`UPDATE ${schema}.customers SET tier = 'gold' WHERE id = $1`, [id]);
    await source.query(`DELETE FROM ${schema}.customers WHERE id = 7`);
    // 20 creates + 20 updates + 1 delete + 1 tombstone
    await waitForRecords(admin, capture.topic('customers'), 42);
    records = await readRecords(kafka, capture.topic('customers'), 42);
  });

  afterAll(async () => {
    await capture?.stop();
    await admin?.disconnect();
    await source?.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await source?.end();
  });

  it('creates the table topic with at least 6 partitions', async () => {
    const meta = await admin.fetchTopicMetadata({ topics: [capture.topic('customers')] });
    expect(meta.topics[0]!.partitions.length).toBeGreaterThanOrEqual(6);
  });

  it('keys every event by the entity id, and one key always lands on one partition', async () => {
    const partitionsByKey = new Map<string, Set<number>>();
    for (const r of records) {
      const key = await decode(r.key);
      expect(Object.keys(key)).toEqual(['id']);
      const id = String(key.id);
      partitionsByKey.set(id, (partitionsByKey.get(id) ?? new Set()).add(r.partition));
    }
    expect(partitionsByKey.size).toBe(20);
    for (const partitions of partitionsByKey.values()) expect(partitions.size).toBe(1);
    // 20 keys over 6 partitions: the load is spread, not all on one.
    expect(new Set(records.map((r) => r.partition)).size).toBeGreaterThan(1);
  });

  it('carries inserts and updates with the row image and a source position', async () => {
    const values = await Promise.all(records.map((r) => decode(r.value)));
    const ops = values.filter(Boolean).map((v) => v.op);
    expect(ops.filter((op) => op === 'c')).toHaveLength(20);
    expect(ops.filter((op) => op === 'u')).toHaveLength(20);
    const update = values.find((v) => v?.op === 'u' && String(v.after.id) === '3');
    expect(update.after.tier).toBe('gold');
    // The TOASTed note was not touched by the update: Debezium cannot send it without a full replica identity.
    expect(update.after.notes).toBe('__debezium_unavailable_value');
    const sequence = JSON.parse(update.source.sequence);
    expect(sequence).toHaveLength(2);
    expect(BigInt(sequence[1])).toBeGreaterThan(0n);
  });

  it('turns a delete into a delete event followed by a tombstone for the same key', async () => {
    const forSeven: { offset: bigint; value: any }[] = [];
    for (const r of records) {
      const key = await decode(r.key);
      if (String(key.id) === '7') forSeven.push({ offset: BigInt(r.offset), value: await decode(r.value) });
    }
    forSeven.sort((a, b) => (a.offset < b.offset ? -1 : 1));
    expect(forSeven.map((e) => (e.value === null ? 'tombstone' : e.value.op))).toEqual(['c', 'u', 'd', 'tombstone']);
    expect(String(forSeven[2]!.value.before.id)).toBe('7');
    expect(forSeven[2]!.value.after).toBeNull();
  });
});
