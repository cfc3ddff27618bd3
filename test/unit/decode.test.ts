import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { JsonDecoder, AvroDecoder } from '../../src/decode/debezium.js';
import { splitConnectEnvelope } from '../../src/decode/connect-json.js';
import { UndecodableRecord } from '../../src/model/errors.js';
import type { SchemaRegistry } from '@kafkajs/confluent-schema-registry';
import avro from 'avsc';
import { bigintLongHook } from '../../src/decode/avro-registry.js';

const origin = { topic: 'cdc.shop.demo.customers', partition: 3, offset: '17' };

/** Shaped as Debezium 3.3's PostgreSQL connector writes it (JsonConverter, schemas off). */
function envelope(op: string, after: object | null, sequence = '["36065088","36065296"]', snapshot = 'false') {
  return {
    before: null,
    after,
    source: {
      version: '3.3.1.Final',
      connector: 'postgresql',
      name: 'cdc.shop',
      ts_ms: 1795448591656,
      snapshot,
      db: 'trustsync_source',
      sequence,
      schema: 'demo',
      table: 'customers',
      txId: 749,
      lsn: 36065296,
      xmin: null,
    },
    transaction: null,
    op,
    ts_ms: 1795448592096,
  };
}
const json = (x: unknown) => Buffer.from(JSON.stringify(x));
const decoder = new JsonDecoder();

describe('decoding Debezium JSON', () => {
  it('turns an update into a typed change event with its source position', async () => {
    const e = await decoder.decode({ key: json({ id: 7 }), value: json(envelope('u', { id: 7, tier: 'gold' })), origin });
    expect(e.kind).toBe('change');
    if (e.kind !== 'change') return;
    expect(e).toMatchObject({
      entity: 'demo.customers',
      keyText: '7',
      op: 'u',
      after: { id: 7, tier: 'gold' },
      txId: '749',
      sourceTsMs: 1795448591656,
      captureTsMs: 1795448592096,
      origin,
    });
    expect(e.position).toEqual({ snapshot: false, commitLsn: 36065088n, lsn: 36065296n });
    expect(e.fields).toBeNull();
  });

  it('reads envelopes with embedded schemas and keeps the field types', async () => {
    const schema = {
      type: 'struct',
      fields: [
        { field: 'before', type: 'struct', optional: true, fields: [] },
        {
          field: 'after',
          type: 'struct',
          optional: true,
          fields: [
            { field: 'id', type: 'int64', optional: false },
            { field: 'updated_at', type: 'string', optional: false, name: 'io.debezium.time.ZonedTimestamp' },
          ],
        },
      ],
    };
    const e = await decoder.decode({
      key: json({ schema: { type: 'struct' }, payload: { id: 7 } }),
      value: json({ schema, payload: envelope('c', { id: 7, updated_at: '2026-01-01T00:00:00Z' }) }),
      origin,
    });
    expect(e.kind === 'change' && e.fields).toEqual({
      id: { type: 'int64', name: undefined, optional: false },
      updated_at: { type: 'string', name: 'io.debezium.time.ZonedTimestamp', optional: false },
    });
  });

  it('reads only the payload of an envelope whose schema it has seen, and follows a schema that changes', async () => {
    const schemaWith = (columns: string[]) => ({
      type: 'struct',
      fields: [{ field: 'after', type: 'struct', optional: true, fields: columns.map((c) => ({ field: c, type: 'string', optional: true })) }],
    });
    const fresh = new JsonDecoder();
    const decode = (columns: string[], after: Record<string, unknown>) =>
      fresh.decode({
        key: json({ schema: { type: 'struct' }, payload: { id: 7 } }),
        value: json({ schema: schemaWith(columns), payload: envelope('u', after) }),
        origin,
      });
    const first = await decode(['id', 'name'], { id: 7, name: 'a' });
    const again = await decode(['id', 'name'], { id: 7, name: 'b' });
    const added = await decode(['id', 'name', 'tier'], { id: 7, name: 'b', tier: 'gold' });
    expect([first, again, added].map((e) => e.kind === 'change' && [Object.keys(e.fields ?? {}), e.after])).toEqual([
      [['id', 'name'], { id: 7, name: 'a' }],
      [['id', 'name'], { id: 7, name: 'b' }],
      [['id', 'name', 'tier'], { id: 7, name: 'b', tier: 'gold' }],
    ]);
  });

  it('splits any JsonConverter envelope exactly where a whole parse would, whatever its strings hold', () => {
    const text = fc.string({ unit: fc.constantFrom('a', '"', '\\', '{', '}', '[', ']', ',', ':', 'é', '😀', '\n', ',"payload":') });
    fc.assert(
      fc.property(
        fc.dictionary(text, fc.oneof(text, fc.integer(), fc.constant(null), fc.array(text))),
        fc.dictionary(text, fc.oneof(text, fc.array(text))),
        (payload, schemaExtra) => {
          const buf = json({ schema: { type: 'struct', ...schemaExtra }, payload });
          const parts = splitConnectEnvelope(buf)!;
          expect(JSON.parse(buf.toString('utf8', parts.payloadStart, parts.payloadEnd))).toEqual(payload);
          expect(JSON.parse(buf.toString('utf8', parts.schemaStart, parts.schemaEnd))).toEqual({ type: 'struct', ...schemaExtra });
        },
      ),
    );
    expect(splitConnectEnvelope(json({ payload: {}, schema: {} }))).toBeNull();
    expect(splitConnectEnvelope(Buffer.from('{"schema":{"a":1}, "payload":{}}'))).toBeNull();
  });

  it('names a malformed envelope as malformed JSON, even when it starts like one', async () => {
    const broken = Buffer.from('{"schema":{"type":"struct"},"payload":{"op":"u",}');
    await expect(decoder.decode({ key: json({ id: 1 }), value: broken, origin })).rejects.toMatchObject({ code: 'malformed-json' });
  });

  it('marks snapshot reads', async () => {
    const e = await decoder.decode({ key: json({ id: 1 }), value: json(envelope('r', { id: 1 }, '[null,"100"]', 'first')), origin });
    expect(e.kind === 'change' && e.position.snapshot).toBe(true);
  });

  it('understands the tombstone after a delete, heartbeats and truncates', async () => {
    expect((await decoder.decode({ key: json({ id: 7 }), value: null, origin })).kind).toBe('tombstone');
    expect((await decoder.decode({ key: json({ serverName: 'cdc.shop' }), value: json({ ts_ms: 1 }), origin })).kind).toBe('heartbeat');
    expect((await decoder.decode({ key: null, value: json(envelope('t', null)), origin })).kind).toBe('truncate');
  });

  it.each([
    ['malformed JSON', { key: json({ id: 1 }), value: Buffer.from('{"op": "u", '), origin }, 'malformed-json'],
    ['a missing key', { key: null, value: json(envelope('u', { id: 1 })), origin }, 'missing-key'],
    ['a record that is not a change event', { key: json({ id: 1 }), value: json({ hello: 'world' }), origin }, 'not-a-change-event'],
    ['an unreadable position', { key: json({ id: 1 }), value: json(envelope('u', { id: 1 }, '["a","b"]')), origin }, 'bad-position'],
  ])('refuses %s with a reason (it goes to the DLQ)', async (_what, record, code) => {
    const err = await decoder.decode(record).catch((e) => e);
    expect(err).toBeInstanceOf(UndecodableRecord);
    expect((err as UndecodableRecord).code).toBe(code);
    expect((err as UndecodableRecord).retriable).toBe(false);
  });
});

describe('decoding Avro', () => {
  it('refuses a value without the Confluent magic byte before asking the registry', async () => {
    const registry = {
      getSchema: () => {
        throw new Error('must not be called');
      },
    } as unknown as SchemaRegistry;
    const err = await new AvroDecoder(registry).decode({ key: null, value: Buffer.from('{"op":"c"}'), origin }).catch((e) => e);
    expect(err).toBeInstanceOf(UndecodableRecord);
    expect((err as UndecodableRecord).code).toBe('bad-magic-byte');
  });

  it('keeps the Connect semantic names of primitive fields (timestamptz, JSON), which avsc drops, for the columns they create', async () => {
    const value = {
      type: 'record',
      name: 'Value',
      fields: [
        { name: 'id', type: 'long' },
        { name: 'at', type: { type: 'string', 'connect.version': 1, 'connect.name': 'io.debezium.time.ZonedTimestamp' } },
        { name: 'seen', type: ['null', { type: 'long', 'connect.name': 'io.debezium.time.MicroTimestamp' }], default: null },
      ],
    };
    const source = {
      type: 'record',
      name: 'Source',
      fields: [
        { name: 'lsn', type: 'long' },
        { name: 'sequence', type: 'string' },
        { name: 'snapshot', type: 'string' },
      ],
    };
    const schema = {
      type: 'record',
      name: 'Envelope',
      fields: [
        { name: 'before', type: ['null', value] },
        { name: 'after', type: ['null', 'Value'] },
        { name: 'source', type: source },
        { name: 'op', type: 'string' },
      ],
    };
    const type = avro.Type.forSchema(schema as avro.Schema, { typeHook: bigintLongHook as never });
    const body = type.toBuffer({
      before: null,
      after: { id: 1n, at: '2026-01-01T00:00:00Z', seen: 5n },
      source: { schema: 'demo', table: 'events', lsn: 10n, sequence: '["1","10"]', snapshot: 'false' },
      op: 'c',
    });
    const keyType = avro.Type.forSchema({ type: 'record', name: 'Key', fields: [{ name: 'id', type: 'long' }] }, { typeHook: bigintLongHook as never });
    const registry = { getSchema: async (id: number) => (id === 1 ? type : keyType) } as unknown as SchemaRegistry;
    const framed = (id: number, buf: Buffer) => Buffer.concat([Buffer.from([0, 0, 0, 0, id]), buf]);
    const decoded = await new AvroDecoder(registry).decode({ key: framed(2, keyType.toBuffer({ id: 1n })), value: framed(1, body), origin });
    expect(decoded.kind === 'change' && decoded.fields).toEqual({
      id: { type: 'int64', optional: false },
      at: { type: 'string', name: 'io.debezium.time.ZonedTimestamp', optional: false },
      seen: { type: 'int64', name: 'io.debezium.time.MicroTimestamp', optional: true },
    });
    expect(decoded.kind === 'change' && decoded.after).toMatchObject({ id: 1n, at: '2026-01-01T00:00:00Z', seen: 5n });
  });
});

describe('undecodable keys in the history', () => {
  it('stay readable text when they are text, and become hex when they are not', async () => {
    const { printableKey } = await import('../../src/flow/apply-records.js');
    expect(printableKey(Buffer.from('{"id":1}'))).toBe('{"id":1}');
    expect(printableKey(Buffer.from([0, 0, 0, 0, 1, 2]))).toBe('0x000000000102');
    expect(printableKey(null)).toBe('(no key)');
  });
});
