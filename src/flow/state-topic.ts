import avro from 'avsc';
import { bigintLong, bigintLongHook } from '../decode/avro-registry.js';
import { SchemaIncompatible, RegistryUnavailable } from '../model/errors.js';

/**
 * A compacted topic holding each record's current state as Avro (Confluent wire format, schema in
 * the registry), keyed by the record's key: what analysts read with standard tools. A record the
 * destination no longer holds is a tombstone.
 */
export interface StateTopicSpec {
  topic: string;
  /** The Avro record schema, as parsed from the .avsc file. */
  schema: Record<string, unknown>;
  /** Where the schema came from, for messages. */
  schemaFile: string;
}

export interface StateMessage {
  key: string;
  value: Buffer | null;
}

/** Parses an .avsc record schema: problems come back as text (the flow file check lists them). */
export function parseStateSchema(schema: unknown): { type?: avro.types.RecordType; problem?: string } {
  try {
    const type = avro.Type.forSchema(schema as avro.Schema, { typeHook: bigintLongHook as never });
    if (!(type instanceof avro.types.RecordType)) return { problem: 'a state schema must be an Avro record' };
    for (const f of type.fields) {
      if (!convertible(f.type))
        return {
          problem: `field ${f.name}: ${f.type.typeName} is not supported — use string, int, long, float, double, boolean, bytes, or a long with logicalType timestamp-micros/timestamp-millis, optionally in a union with null`,
        };
    }
    return { type };
  } catch (err) {
    return { problem: (err as Error).message };
  }
}

const SCALARS = new Set(['string', 'int', 'long', 'float', 'double', 'boolean', 'bytes']);
/** avsc reads ["null", T] as an unwrapped union; its members are `types`. */
const unionMembers = (t: avro.Type): avro.Type[] | undefined =>
  t instanceof avro.types.UnwrappedUnionType ? (t as unknown as { types: avro.Type[] }).types : undefined;
function convertible(t: avro.Type): boolean {
  const members = unionMembers(t);
  if (members) return members.every((u) => u.typeName === 'null' || convertible(u));
  return SCALARS.has(t.typeName) || t === bigintLong;
}

/** Microseconds since the epoch of PostgreSQL's text of a timestamp (with or without time zone). */
export function timestampMicros(text: string): bigint {
  const m = /^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})(?:\.(\d{1,6}))?(Z|[+-]\d{2}(?::?\d{2})?)?$/.exec(text);
  if (!m) throw new Error(`not a timestamp: ${text}`);
  const zone = !m[4] || m[4] === 'Z' ? 'Z' : m[4].length === 3 ? `${m[4]}:00` : m[4].includes(':') ? m[4] : `${m[4].slice(0, 3)}:${m[4].slice(3)}`;
  const seconds = Date.parse(`${m[1]}T${m[2]}${zone}`);
  return BigInt(seconds) * 1000n + BigInt((m[3] ?? '').padEnd(6, '0'));
}

/** A column's text (as the destination gives it) as the Avro field's value. */
function avroValue(text: string | null, t: avro.Type, schema: unknown): unknown {
  const members = unionMembers(t);
  if (members) {
    if (text === null) return null;
    return avroValue(
      text,
      members.find((u) => u.typeName !== 'null')!,
      (schema as unknown[]).filter((s) => s !== 'null')[0],
    );
  }
  if (text === null) throw new Error('null for a field whose type has no null');
  const logical = typeof schema === 'object' && schema !== null ? (schema as { logicalType?: string }).logicalType : undefined;
  // The BigInt long is a custom type (typeName "long" only in name): treat it as long.
  switch (t === bigintLong ? 'long' : t.typeName) {
    case 'string':
      return text;
    case 'int':
      return Number.parseInt(text, 10);
    case 'long':
      // avsc keeps logical longs as numbers: microseconds since 1970 stay below 2^53 until the year 2255.
      if (logical === 'timestamp-micros') return Number(timestampMicros(text));
      if (logical === 'timestamp-millis') return Number(timestampMicros(text) / 1000n);
      return t === bigintLong ? BigInt(text) : Number(text);
    case 'float':
    case 'double':
      return Number(text);
    case 'boolean':
      return text === 't' || text === 'true' || text === '1'; // PostgreSQL's text, JSON's, MariaDB's
    case 'bytes':
      return text.startsWith('\\x') ? Buffer.from(text.slice(2), 'hex') : Buffer.from(text);
  }
  return text;
}

/** Encodes destination rows (columns as PostgreSQL text) as state records under a registered schema id. */
export class StateEncoder {
  private readonly fields: { name: string; type: avro.Type; schema: unknown; default: unknown; hasDefault: boolean }[];

  constructor(
    readonly spec: StateTopicSpec,
    private readonly type: avro.types.RecordType,
    readonly schemaId: number,
  ) {
    const declared = (spec.schema.fields as { name: string; type: unknown; default?: unknown }[]) ?? [];
    this.fields = type.fields.map((f, i) => ({
      name: f.name,
      type: f.type,
      schema: declared[i]?.type,
      default: declared[i]?.default,
      hasDefault: declared[i] ? 'default' in declared[i]! : false,
    }));
  }

  /** Fields the destination table lacks and that have no default: the schema cannot be filled. */
  missingColumns(columns: readonly string[]): string[] {
    return this.fields.filter((f) => !columns.includes(f.name) && !f.hasDefault).map((f) => f.name);
  }

  message(key: string, row: Record<string, string | null> | null): StateMessage {
    if (row === null) return { key, value: null };
    const record: Record<string, unknown> = {};
    for (const f of this.fields) {
      try {
        record[f.name] = f.name in row ? avroValue(row[f.name]!, f.type, f.schema) : f.default;
      } catch (err) {
        throw new SchemaIncompatible(
          `state of ${key} in ${this.spec.topic}: field ${f.name}: ${(err as Error).message}`,
          `make ${f.name} nullable (["null", …]) in ${this.spec.schemaFile}, or fill the column`,
        );
      }
    }
    const header = Buffer.alloc(5);
    header.writeUInt32BE(this.schemaId, 1);
    return { key, value: Buffer.concat([header, this.type.toBuffer(record)]) };
  }
}

async function registry(url: string, method: string, path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  let res: Response;
  try {
    res = await fetch(`${url}${path}`, {
      method,
      headers: { 'content-type': 'application/vnd.schemaregistry.v1+json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    throw new RegistryUnavailable(`schema registry at ${url} did not answer: ${(err as Error).message}`, err);
  }
  const text = await res.text();
  let json: Record<string, unknown> = {};
  try {
    json = text ? (JSON.parse(text) as Record<string, unknown>) : {};
  } catch {
    json = { message: text };
  }
  if (res.status >= 500) throw new RegistryUnavailable(`schema registry at ${url} answered ${res.status} to ${method} ${path}: ${text.slice(0, 200)}`);
  return { status: res.status, json };
}

/**
 * Registers the state schema under `<topic>-value`. A new subject gets BACKWARD compatibility first,
 * so a later version that readers of the old one could not read is refused: the flow stops with the
 * registry's reason instead of publishing it.
 */
export async function registerStateSchema(registryUrl: string, spec: StateTopicSpec): Promise<number> {
  const subject = encodeURIComponent(`${spec.topic}-value`);
  const existing = await registry(registryUrl, 'GET', `/subjects/${subject}/versions`);
  if (existing.status === 404) await registry(registryUrl, 'PUT', `/config/${subject}`, { compatibility: 'BACKWARD' });
  const res = await registry(registryUrl, 'POST', `/subjects/${subject}/versions`, { schema: JSON.stringify(spec.schema) });
  if (res.status === 409 || res.status === 422) {
    throw new SchemaIncompatible(
      `${spec.schemaFile} is not compatible with the schema of ${spec.topic} already in the registry: ${String(res.json.message ?? '').slice(0, 400)}`,
      `evolve the schema compatibly (add fields with defaults, do not change types), or publish to a new state topic`,
    );
  }
  if (res.status >= 300 || typeof res.json.id !== 'number')
    throw new RegistryUnavailable(`registering ${spec.schemaFile}: registry answered ${res.status} ${JSON.stringify(res.json).slice(0, 200)}`);
  return res.json.id;
}

export function stateEncoderFor(spec: StateTopicSpec, schemaId: number): StateEncoder {
  const { type, problem } = parseStateSchema(spec.schema);
  if (!type) throw new SchemaIncompatible(`${spec.schemaFile}: ${problem}`, 'fix the Avro schema');
  return new StateEncoder(spec, type, schemaId);
}
