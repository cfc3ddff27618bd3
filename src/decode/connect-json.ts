/**
 * Kafka Connect's JsonConverter with schemas on writes `{"schema":{…},"payload":{…}}`, the schema
 * first and byte-for-byte the same for every change of one table version. It is often larger than
 * the payload. Knowing where it ends lets a decoder parse only the payload, and recognise the next
 * envelope with the same schema by comparing bytes.
 */
export interface EnvelopeParts {
  schemaStart: number;
  schemaEnd: number;
  payloadStart: number;
  payloadEnd: number;
}

const SCHEMA_PREFIX = Buffer.from('{"schema":');
const PAYLOAD_INFIX = Buffer.from(',"payload":');
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;

/** The end (exclusive) of the JSON object or array starting at `start`, or -1 if it does not close. */
function endOfValue(buf: Buffer, start: number): number {
  let depth = 0;
  for (let i = start; i < buf.length; i++) {
    const c = buf[i]!;
    if (c === QUOTE) {
      // Skip the string; a backslash escapes the byte after it (multi-byte UTF-8 never contains these bytes).
      for (i++; i < buf.length && buf[i] !== QUOTE; i++) if (buf[i] === BACKSLASH) i++;
    } else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      depth++;
    } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
      if (--depth === 0) return i + 1;
    }
  }
  return -1;
}

/**
 * Where the schema object and the payload lie in a JsonConverter envelope, or null when the buffer is
 * not laid out that way (no schema, whitespace, another writer): the caller then parses it whole.
 * Nothing here validates JSON; parsing the parts does.
 */
export function splitConnectEnvelope(buf: Buffer): EnvelopeParts | null {
  if (buf.length < SCHEMA_PREFIX.length + PAYLOAD_INFIX.length + 4) return null;
  if (buf.compare(SCHEMA_PREFIX, 0, SCHEMA_PREFIX.length, 0, SCHEMA_PREFIX.length) !== 0) return null;
  const schemaStart = SCHEMA_PREFIX.length;
  if (buf[schemaStart] !== OPEN_BRACE) return null;
  const schemaEnd = endOfValue(buf, schemaStart);
  if (schemaEnd < 0) return null;
  if (buf.compare(PAYLOAD_INFIX, 0, PAYLOAD_INFIX.length, schemaEnd, schemaEnd + PAYLOAD_INFIX.length) !== 0) return null;
  const payloadStart = schemaEnd + PAYLOAD_INFIX.length;
  if (buf[buf.length - 1] !== CLOSE_BRACE) return null;
  return { schemaStart, schemaEnd, payloadStart, payloadEnd: buf.length - 1 };
}

/** Whether `buf` is an envelope that starts with `prefix`: an earlier envelope's bytes up to its payload. */
export function sharesEnvelopePrefix(buf: Buffer, prefix: Buffer): boolean {
  return buf.length > prefix.length && buf.compare(prefix, 0, prefix.length, 0, prefix.length) === 0 && buf[buf.length - 1] === CLOSE_BRACE;
}
