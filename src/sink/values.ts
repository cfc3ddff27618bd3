import type { FieldType } from '../model/change.js';

/*
 * Values as every SQL destination takes them: Debezium's temporal encodings (days, millis, micros,
 * nanos since the epoch or midnight) become ISO text, and structures become JSON.
 */

const MICROS_PER_DAY = 86_400_000_000n;

function isoFromMicros(micros: bigint): string {
  const rest = ((micros % 1000n) + 1000n) % 1000n; // floor division, so times before 1970 stay right
  const ms = (micros - rest) / 1000n;
  const base = new Date(Number(ms)).toISOString().replace('Z', '');
  return `${base}${rest.toString().padStart(3, '0')}`;
}

function timeFromMicros(micros: bigint): string {
  const m = ((micros % MICROS_PER_DAY) + MICROS_PER_DAY) % MICROS_PER_DAY;
  const seconds = m / 1_000_000n;
  const frac = (m % 1_000_000n).toString().padStart(6, '0');
  const hh = (seconds / 3600n).toString().padStart(2, '0');
  const mm = ((seconds / 60n) % 60n).toString().padStart(2, '0');
  const ss = (seconds % 60n).toString().padStart(2, '0');
  return `${hh}:${mm}:${ss}.${frac}`;
}

/** ISO text of a Debezium temporal value (a number with a temporal semantic name), else undefined. */
export function temporalText(value: unknown, field: FieldType | undefined): string | undefined {
  const name = field?.name;
  if (!name || (typeof value !== 'number' && typeof value !== 'bigint')) return undefined;
  const n = BigInt(value);
  switch (name) {
    case 'io.debezium.time.Date':
    case 'org.apache.kafka.connect.data.Date':
      return new Date(Number(n) * 86_400_000).toISOString().slice(0, 10);
    case 'io.debezium.time.Timestamp':
    case 'org.apache.kafka.connect.data.Timestamp':
      return isoFromMicros(n * 1000n);
    case 'io.debezium.time.MicroTimestamp':
      return isoFromMicros(n);
    case 'io.debezium.time.NanoTimestamp':
      return isoFromMicros(n / 1000n);
    case 'io.debezium.time.Time':
      return timeFromMicros(n * 1000n);
    case 'io.debezium.time.MicroTime':
      return timeFromMicros(n);
    case 'io.debezium.time.NanoTime':
      return timeFromMicros(n / 1000n);
  }
  return undefined;
}

/** JSON of a structured value; Avro longs (BigInt) as their digits. */
export function jsonText(value: unknown): string {
  return JSON.stringify(value, (_, v) => (typeof v === 'bigint' ? v.toString() : v));
}
