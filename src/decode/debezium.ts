import type { SchemaRegistry } from '@kafkajs/confluent-schema-registry';
import { keyTextOf, type DecodedRecord, type FieldType, type RecordHeaders, type RecordOrigin, type Row } from '../model/change.js';
import { InvalidPosition, RegistryUnavailable, UndecodableRecord } from '../model/errors.js';
import { postgresPosition } from '../order/position.js';
import { sharesEnvelopePrefix, splitConnectEnvelope } from './connect-json.js';
import { connectNameOf } from './avro-registry.js';

export interface RawRecord {
  key: Buffer | null;
  value: Buffer | null;
  origin: RecordOrigin;
  headers?: RecordHeaders;
  /** A dead letter replayed: how often it failed so far, and when first. */
  deadLettered?: { attempts: number; firstFailure: Date };
}

/** A decoded Kafka Connect payload, with the row's field types when the record carried a schema. */
interface Decoded {
  payload: Row;
  fields: Record<string, FieldType> | null;
}

export interface RecordDecoder {
  decode(record: RawRecord): Promise<DecodedRecord>;
}

/** Debezium's PostgreSQL envelope → trustsync's change event. Shared by the JSON and Avro paths. */
export function fromEnvelope(key: Row | null, value: Decoded | null, origin: RecordOrigin): DecodedRecord {
  if (value === null) {
    if (key === null) throw new UndecodableRecord('missing-key', 'record has neither key nor value');
    return { kind: 'tombstone', keyText: keyTextOf(key), origin };
  }
  const v = value.payload;
  const op = v.op;
  if (op === undefined) {
    // Debezium heartbeats carry only ts_ms; anything else without `op` is not a change event.
    if ('ts_ms' in v && Object.keys(v).length <= 2) return { kind: 'heartbeat', origin };
    throw new UndecodableRecord('not-a-change-event', 'value has no "op": not a Debezium change event');
  }
  const source = (v.source ?? null) as Row | null;
  if (source === null || typeof source !== 'object') throw new UndecodableRecord('not-a-change-event', 'value has no "source" block');
  const entity = `${String(source.schema)}.${String(source.table)}`;
  const snapshotFlag = String(source.snapshot ?? 'false');
  const snapshot = op === 'r' || (snapshotFlag !== 'false' && snapshotFlag !== 'null');
  let position;
  try {
    position = postgresPosition(source.sequence, source.lsn, snapshot);
  } catch (err) {
    if (err instanceof InvalidPosition) throw new UndecodableRecord('bad-position', err.message, err);
    throw err;
  }
  if (op === 't') return { kind: 'truncate', entity, position, origin };
  if (op !== 'c' && op !== 'u' && op !== 'd' && op !== 'r') throw new UndecodableRecord('not-a-change-event', `unknown op ${JSON.stringify(op)}`);
  if (key === null || Object.keys(key).length === 0) {
    throw new UndecodableRecord('missing-key', `${entity}: change without a key (a table without a primary key needs message.key.columns in the connector)`);
  }
  const before = (v.before ?? null) as Row | null;
  const after = (v.after ?? null) as Row | null;
  if (op !== 'd' && after === null) throw new UndecodableRecord('not-a-change-event', `${entity}: op ${op} without an "after" row`);
  const num = (x: unknown) => (x === null || x === undefined ? null : Number(x));
  return {
    kind: 'change',
    entity,
    key,
    keyText: keyTextOf(key),
    op,
    before,
    after,
    position,
    txId: source.txId === null || source.txId === undefined ? null : String(source.txId),
    sourceTsMs: num(source.ts_ms),
    sourceTsUs:
      source.ts_us !== null && source.ts_us !== undefined
        ? BigInt(source.ts_us as number | bigint)
        : source.ts_ms !== null && source.ts_ms !== undefined
          ? BigInt(source.ts_ms as number | bigint) * 1000n
          : null,
    captureTsMs: num(v.ts_ms),
    fields: value.fields,
    origin,
  };
}

interface ConnectJsonSchema {
  type: string;
  name?: string;
  optional?: boolean;
  field?: string;
  fields?: ConnectJsonSchema[];
}

function fieldsOfConnectSchema(schema: ConnectJsonSchema | undefined): Record<string, FieldType> | null {
  const after = schema?.fields?.find((f) => f.field === 'after');
  if (!after?.fields) return null;
  const out: Record<string, FieldType> = {};
  for (const f of after.fields) out[f.field!] = { type: f.type, name: f.name, optional: Boolean(f.optional) };
  return out;
}

function parseJson(buf: Buffer, what: string): unknown {
  try {
    return JSON.parse(buf.toString('utf8'));
  } catch (err) {
    throw new UndecodableRecord('malformed-json', `${what} is not JSON: ${(err as Error).message}`, err);
  }
}

/** Kafka Connect's JsonConverter output, with (`{schema, payload}`) or without embedded schemas. */
function unwrapConnectJson(parsed: unknown): Decoded {
  if (parsed !== null && typeof parsed === 'object' && 'payload' in parsed && 'schema' in parsed) {
    const { schema, payload } = parsed as { schema: ConnectJsonSchema; payload: unknown };
    return { payload: payload as Row, fields: fieldsOfConnectSchema(schema) };
  }
  return { payload: parsed as Row, fields: null };
}

/** A JsonConverter envelope seen before: its bytes up to the payload, and the row fields its schema gives. */
interface KnownEnvelope {
  prefix: Buffer;
  fields: Record<string, FieldType> | null;
}

export class JsonDecoder implements RecordDecoder {
  /**
   * Per topic, for its keys and its values, the envelope's bytes up to its payload — the schema,
   * which is the same for every change of a table version — and the fields read from it once.
   */
  private readonly envelopes = new Map<string, Partial<Record<'key' | 'value', KnownEnvelope>>>();

  async decode(record: RawRecord): Promise<DecodedRecord> {
    const key = record.key === null ? null : this.unwrap(record.key, 'key', record.origin.topic).payload;
    if (key !== null && (typeof key !== 'object' || Array.isArray(key))) throw new UndecodableRecord('missing-key', 'key is not a JSON object of key columns');
    const value = record.value === null ? null : this.unwrap(record.value, 'value', record.origin.topic);
    return fromEnvelope(key, value, record.origin);
  }

  /**
   * A JsonConverter envelope whose schema was seen before is recognised by comparing bytes, and only
   * its payload is parsed; anything else is parsed whole (where a malformed record is named as such).
   */
  private unwrap(buf: Buffer, what: 'key' | 'value', topic: string): Decoded {
    let known = this.envelopes.get(topic);
    if (!known) this.envelopes.set(topic, (known = {}));
    let envelope = known[what] && sharesEnvelopePrefix(buf, known[what].prefix) ? known[what] : undefined;
    if (!envelope) {
      const parts = splitConnectEnvelope(buf);
      if (parts) {
        try {
          const fields =
            what === 'value' ? fieldsOfConnectSchema(JSON.parse(buf.toString('utf8', parts.schemaStart, parts.schemaEnd)) as ConnectJsonSchema) : null;
          known[what] = envelope = { prefix: Buffer.from(buf.subarray(0, parts.payloadStart)), fields };
        } catch {
          // Parsed whole below.
        }
      }
    }
    if (envelope) {
      try {
        return { payload: JSON.parse(buf.toString('utf8', envelope.prefix.length, buf.length - 1)) as Row, fields: envelope.fields };
      } catch {
        // Parsed whole below.
      }
    }
    return unwrapConnectJson(parseJson(buf, what));
  }
}

interface AvroJsonSchema {
  type: unknown;
  name?: string;
  fields?: { name: string; type: unknown }[];
  'connect.name'?: string;
  'connect.type'?: string;
}

const AVRO_TO_CONNECT: Record<string, string> = {
  int: 'int32',
  long: 'int64',
  float: 'float32',
  double: 'float64',
  boolean: 'boolean',
  string: 'string',
  bytes: 'bytes',
};

function fieldTypeOfAvro(t: unknown): FieldType {
  let optional = false;
  let inner = t;
  if (Array.isArray(t)) {
    optional = t.includes('null');
    inner = t.find((x) => x !== 'null');
  }
  if (typeof inner === 'string') return { type: AVRO_TO_CONNECT[inner] ?? inner, optional };
  const s = inner as AvroJsonSchema;
  const base = typeof s.type === 'string' ? (AVRO_TO_CONNECT[s.type] ?? s.type) : 'struct';
  return { type: s['connect.type'] ?? (s.type === 'record' ? 'struct' : base), name: s['connect.name'], optional };
}

/** The parts of avsc's Type API used to read a record's field types. */
interface AvscType {
  schema(opts: { exportAttrs: boolean }): unknown;
  getTypes?(): AvscType[];
  getFields?(): { getName(): string; getType(): AvscType }[];
}
interface AvscRecord extends AvscType {
  getField?(name: string): { getType(): AvscType } | undefined;
}

/** The Confluent wire format (magic byte 0, 4-byte schema id, Avro body), schemas from the registry. */
export class AvroDecoder implements RecordDecoder {
  private readonly fieldsById = new Map<number, Record<string, FieldType> | null>();

  constructor(private readonly registry: SchemaRegistry) {}

  private async read(buf: Buffer, what: string): Promise<{ value: Row; id: number }> {
    if (buf.length < 5 || buf[0] !== 0) {
      throw new UndecodableRecord(
        'bad-magic-byte',
        `${what} is not in the Confluent Avro wire format (first byte ${buf.length ? buf[0] : 'missing'}, expected 0)`,
      );
    }
    const id = buf.readInt32BE(1);
    let type;
    try {
      type = await this.registry.getSchema(id);
    } catch (err) {
      const status = (err as { status?: number }).status;
      if (status === 404 || status === 40403 || /not found/i.test(String((err as Error).message))) {
        throw new UndecodableRecord('unknown-schema', `${what}: schema id ${id} is unknown to the registry`, err);
      }
      throw new RegistryUnavailable(`schema registry did not serve schema id ${id}: ${(err as Error).message}`, err);
    }
    try {
      return { value: (type as { fromBuffer(b: Buffer): Row }).fromBuffer(buf.subarray(5)), id };
    } catch (err) {
      throw new UndecodableRecord('avro-decode-failed', `${what} does not decode with schema id ${id}: ${(err as Error).message}`, err);
    }
  }

  private async fields(id: number): Promise<Record<string, FieldType> | null> {
    if (!this.fieldsById.has(id)) {
      // Walk avsc's types rather than the schema JSON: there, "after" names the record "before" defined.
      const envelope = (await this.registry.getSchema(id)) as unknown as AvscRecord;
      const after = envelope.getField?.('after')?.getType();
      const record = (after?.getTypes?.() ?? [after]).find((t) => t?.getFields) as AvscRecord | undefined;
      const out: Record<string, FieldType> = {};
      for (const f of record?.getFields?.() ?? []) {
        const type = f.getType();
        const field = fieldTypeOfAvro(type.schema({ exportAttrs: true }));
        const named = (type.getTypes?.() ?? [type]).map((t) => connectNameOf(t as never)).find(Boolean);
        out[f.getName()] = named ? { ...field, name: named } : field;
      }
      this.fieldsById.set(id, record ? out : null);
    }
    return this.fieldsById.get(id)!;
  }

  async decode(record: RawRecord): Promise<DecodedRecord> {
    const key = record.key === null ? null : (await this.read(record.key, 'key')).value;
    if (record.value === null) return fromEnvelope(key, null, record.origin);
    const { value, id } = await this.read(record.value, 'value');
    return fromEnvelope(key, { payload: value, fields: await this.fields(id) }, record.origin);
  }
}
