import avro from 'avsc';
import { SchemaRegistry, SchemaType } from '@kafkajs/confluent-schema-registry';

/**
 * Avro `long` as BigInt. Debezium's positions (LSNs) and ts_us/ts_ns exceed 2^53,
 * so JavaScript numbers would silently lose the digits ordering depends on.
 */
const bigintLongSpec = {
  fromBuffer: (buf: Buffer) => buf.readBigInt64LE(),
  toBuffer: (n: bigint) => {
    const buf = Buffer.alloc(8);
    buf.writeBigInt64LE(BigInt(n));
    return buf;
  },
  fromJSON: (x: unknown) => BigInt(x as string | number),
  toJSON: (n: bigint) => n.toString(),
  isValid: (n: unknown) => typeof n === 'bigint',
  compare: (a: bigint, b: bigint) => (a === b ? 0 : a < b ? -1 : 1),
};
export const bigintLong = avro.types.LongType.__with(bigintLongSpec);

/**
 * Kafka Connect's semantic names (`connect.name`, e.g. io.debezium.time.ZonedTimestamp) of the
 * primitive types that carry one: avsc keeps no attributes of a primitive, so the hook gives each
 * such type an instance of its own and remembers its name here.
 */
const connectNames = new WeakMap<avro.Type, string>();

/** The Connect semantic name a primitive Avro type carried in its schema, if any. */
export function connectNameOf(t: avro.Type): string | undefined {
  return connectNames.get(t);
}

const PRIMITIVES = new Set(['string', 'int', 'long', 'float', 'double', 'boolean', 'bytes']);

/** avsc type hook: plain `long` becomes the BigInt long; logical longs (timestamps) stay numbers. */
export function bigintLongHook(schema: avro.Schema): avro.Type | undefined {
  const attrs = typeof schema === 'object' && schema !== null && !Array.isArray(schema) ? (schema as { type?: unknown; 'connect.name'?: unknown }) : undefined;
  if (attrs && typeof attrs['connect.name'] === 'string' && typeof attrs.type === 'string' && PRIMITIVES.has(attrs.type) && !('logicalType' in attrs)) {
    const own = attrs.type === 'long' ? avro.types.LongType.__with(bigintLongSpec) : avro.Type.forSchema(attrs.type);
    connectNames.set(own, attrs['connect.name']);
    return own;
  }
  const isPlainLong =
    schema === 'long' || (typeof schema === 'object' && schema !== null && (schema as { type?: unknown }).type === 'long' && !('logicalType' in schema));
  return isPlainLong ? bigintLong : undefined;
}

/** A client of a Confluent-compatible registry (Apicurio's /apis/ccompat/v7 here) that decodes longs exactly. */
export function avroSchemaRegistry(ccompatUrl: string): SchemaRegistry {
  return new SchemaRegistry({ host: ccompatUrl, retry: { retries: 2 } }, { [SchemaType.AVRO]: { typeHook: bigintLongHook as never } });
}
