import { createHash } from 'node:crypto';
import { UNAVAILABLE_VALUE, type ChangeEvent, type FieldType, type Row } from '../../model/change.js';
import { RowRejected } from '../../model/errors.js';
import { mapFields, mapRow, targetName, type TableMapping } from '../../model/table.js';
import { positionRank } from '../../order/position.js';
import { temporalText } from '../values.js';
import { sendsDeletes, sendsField } from './authority.js';
import type { HttpTable } from './settings.js';

/** One change as the API receives it. */
export interface ChangeRequest {
  method: string;
  /** The path with its values filled in, relative to the destination's base URL. */
  path: string;
  /** JSON, or undefined for a request without a body (a DELETE). */
  body: string | undefined;
  /** The same for every attempt, restart and replay of this change: the API drops a repeat. */
  idempotencyKey: string;
  /** The table's own headers, and the version header. */
  headers?: Record<string, string>;
  /** The change's version (versionText), when the table's requests carry one. */
  version?: string;
}

/** Digits enough for any source position: as text, versions sort as they compare. */
const VERSION_DIGITS = 39;

/**
 * A change's version as an API keeps it: its source position as a 39-digit decimal text, so that
 * comparing two versions as text or as numbers gives the same order (a position exceeds 2^64).
 */
export function versionText(rank: bigint): string {
  return rank.toString().padStart(VERSION_DIGITS, '0');
}

/** A version the API holds (text or number), as a rank; undefined when it is not one trustsync wrote. */
export function versionRank(held: unknown): bigint | undefined {
  if (typeof held === 'number' && Number.isSafeInteger(held) && held >= 0) return BigInt(held);
  return typeof held === 'string' && /^\d{1,39}$/.test(held) ? BigInt(held) : undefined;
}

/**
 * The idempotency key of a change: its destination, key and source position, hashed so that it is
 * a plain header value whatever the key holds.
 */
export function idempotencyKey(target: string, keyText: string, rank: bigint | string): string {
  return `ts-${createHash('sha256').update(`${target}\0${keyText}\0${rank}`).digest('hex').slice(0, 40)}`;
}

/** A value as JSON carries it: instants as ISO text, bytes as base64, JSON columns as JSON, big integers exact. */
export function jsonValue(value: unknown, field: FieldType | undefined): unknown {
  if (value === null || value === undefined) return null;
  const temporal = temporalText(value, field);
  if (temporal !== undefined) return temporal;
  if (typeof value === 'bigint') return Number.isSafeInteger(Number(value)) ? Number(value) : value.toString();
  if (Buffer.isBuffer(value) || value instanceof Uint8Array) return Buffer.from(value).toString('base64');
  if (field?.name === 'io.debezium.data.Json' && typeof value === 'string') {
    try {
      return JSON.parse(value) as unknown;
    } catch {
      return value;
    }
  }
  return value;
}

/**
 * The request for one change: the table's upsert (body: the mapped row, without the columns an
 * update left unchanged, which the API keeps, nor the fields its policy leaves to the API) or
 * delete (none where the policy leaves deletes to the API). A path value the change lacks rejects
 * it: no request could name the record.
 */
export function changeRequest(spec: HttpTable, m: TableMapping, e: ChangeEvent): ChangeRequest | undefined {
  const target = targetName(m.table);
  if (e.op === 'd' && spec.authority && !sendsDeletes(spec.authority)) return undefined;
  const request = e.op === 'd' ? spec.delete : spec.upsert;
  if (!request) return undefined;
  const fields = mapFields(m, e.fields);
  const row: Row = { ...mapRow(m, e.key), ...(e.after ? mapRow(m, e.after) : {}) };
  const path = request.path.replace(/\{([^{}]+)\}/g, (_, column: string) => {
    const value = jsonValue(row[column], fields[column]);
    if (value === null || value === UNAVAILABLE_VALUE)
      throw new RowRejected(`${target}: the path ${request.path} needs ${column}, which change ${e.keyText} does not carry`);
    return encodeURIComponent(typeof value === 'string' ? value : JSON.stringify(value));
  });
  const rank = positionRank(e.position);
  const version = spec.version ? versionText(rank) : undefined;
  let body: string | undefined;
  if (e.op !== 'd' && e.after) {
    const out: Record<string, unknown> = {};
    for (const [column, value] of Object.entries(mapRow(m, e.after)))
      if (value !== UNAVAILABLE_VALUE && (!spec.authority || sendsField(spec.authority, column))) out[column] = jsonValue(value, fields[column]);
    if (spec.version?.field) out[spec.version.field] = version;
    body = JSON.stringify(out);
  }
  const headers = { ...spec.headers, ...(spec.version?.header ? { [spec.version.header]: version! } : {}) };
  return {
    method: request.method,
    path,
    body,
    idempotencyKey: idempotencyKey(target, e.keyText, rank),
    ...(Object.keys(headers).length ? { headers } : {}),
    ...(version ? { version } : {}),
  };
}
