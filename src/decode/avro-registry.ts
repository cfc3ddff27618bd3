import avro from 'avsc';
import { SchemaRegistry, SchemaType } from '@kafkajs/confluent-schema-registry';

/**
 * Avro `long` as BigInt. Debezium's positions (LSNs) and ts_us/ts_ns exceed 2^53,
 * so JavaScript numbers would silently lose the digits ordering depends on.
 */
export const bigintLong = avro.types.LongType.__with({
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
});

/** avsc type hook: plain `long` becomes the BigInt long; logical longs (timestamps) stay numbers. */
export function bigintLongHook(schema: avro.Schema): avro.Type | undefined {
  const isPlainLong =
    schema === 'long' || (typeof schema === 'object' && schema !== null && (schema as { type?: unknown }).type === 'long' && !('logicalType' in schema));
  return isPlainLong ? bigintLong : undefined;
}

/** A client of a Confluent-compatible registry (Apicurio's /apis/ccompat/v7 here) that decodes longs exactly. */
export function avroSchemaRegistry(ccompatUrl: string): SchemaRegistry {
  return new SchemaRegistry({ host: ccompatUrl, retry: { retries: 2 } }, { [SchemaType.AVRO]: { typeHook: bigintLongHook as never } });
}
