import { z } from 'zod';
import { readSecret, secretRef } from '../../shared/secrets.js';
import type { FieldAuthority } from './authority.js';

/*
 * What a flow file says about an HTTP destination: the control database that keeps the position
 * ledger and the history, authentication, limits, and per table the requests for an upsert and a
 * delete. Parsed with the rest of the flow file; secrets are named here (an environment variable
 * or a file), read only when the sink opens, and never printed.
 */

const headerName = z.string().regex(/^[A-Za-z0-9-]+$/, { message: 'an HTTP header name' });

export const httpAuthSpec = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('bearer'), token: secretRef }),
  z.strictObject({ type: z.literal('basic'), username: z.string().min(1), password: secretRef }),
  z.strictObject({ type: z.literal('header'), name: headerName, value: secretRef }),
]);

const pathTemplate = z.string().regex(/^\/[^\s]*$/, { message: 'a path beginning with /, with {column} for values, e.g. /customers/{id}' });

const requestSpec = z.strictObject({
  method: z.enum(['PUT', 'POST', 'PATCH', 'DELETE']),
  path: pathTemplate,
});

/** The requests one destination table is written with. */
export const httpTableSpec = z.strictObject({
  upsert: requestSpec,
  /** Absent: a source delete is recorded and not sent (the API keeps the record). */
  delete: requestSpec.optional(),
  headers: z.record(headerName, z.string()).default({}),
  /** latest: only the newest change per key of a batch is sent; every: each change, in source order. */
  deliver: z.enum(['latest', 'every']).default('latest'),
  version: z
    .strictObject({
      /** The body field each upsert carries its change's version in, and the API keeps with the record. */
      field: z.string().min(1).optional(),
      /** The header every request (deletes too) carries the version in. */
      header: headerName.optional(),
      /** api: the API refuses a version not newer than its own; etag: trustsync reads the record's, then writes with If-Match. */
      check: z.enum(['api', 'etag']).default('api'),
      /** The statuses by which the API says it holds a newer version (check: api). */
      staleStatuses: z.array(z.number().int().min(400).max(499)).min(1).default([409, 412]),
    })
    .refine((v) => v.field !== undefined || v.header !== undefined, { message: 'name the field or the header the version travels in' })
    .refine((v) => v.check !== 'etag' || v.field !== undefined, {
      message: 'check: etag compares the version the record holds: name its field',
    })
    .optional(),
});

export const httpDestinationSpec = z.strictObject({
  /** The PostgreSQL database that keeps the ledger and the history: the API cannot join a transaction. */
  control: z.string().regex(/^postgres(ql)?:\/\//, { message: 'a postgres:// URL of the database that keeps the ledger and history' }),
  auth: httpAuthSpec.optional(),
  timeoutMs: z.number().int().min(1).max(600_000).default(10_000),
  concurrency: z.number().int().min(1).max(256).default(8),
  /** Requests per second at most, for the whole destination; absent: unlimited (429s still slow it down). */
  rateLimit: z.number().positive().max(100_000).optional(),
  idempotencyHeader: headerName.default('Idempotency-Key'),
  /** Attempts per request before the batch is handed back to the flow's retry. */
  maxAttempts: z.number().int().min(1).max(100).default(6),
  /** The longest wait between attempts, a Retry-After included. */
  maxDelayMs: z.number().int().min(1).max(600_000).default(30_000),
});

export type HttpAuthSpec = z.infer<typeof httpAuthSpec>;
export type HttpTableSpec = z.infer<typeof httpTableSpec>;
export type HttpRequestSpec = z.infer<typeof requestSpec>;
export type HttpVersionSpec = NonNullable<HttpTableSpec['version']>;

/** An HTTP destination as its sink opens it: the flow file's section, and each table's requests by target name. */
export interface HttpSettings extends z.infer<typeof httpDestinationSpec> {
  tables: Record<string, HttpTable>;
}

/** A table's requests, and what its policy (if any) lets trustsync send. */
export interface HttpTable extends HttpTableSpec {
  authority?: FieldAuthority;
}

/** The {column} names of a path template. */
export function templateColumns(path: string): string[] {
  return [...path.matchAll(/\{([^{}]+)\}/g)].map((m) => m[1]!);
}

/** The Authorization (or API-key) header a destination's requests carry; never logged. */
export function authHeaders(auth: HttpAuthSpec | undefined): Record<string, string> {
  if (!auth) return {};
  switch (auth.type) {
    case 'bearer':
      return { authorization: `Bearer ${readSecret(auth.token, 'destination.http.auth.token')}` };
    case 'basic':
      return {
        authorization: `Basic ${Buffer.from(`${auth.username}:${readSecret(auth.password, 'destination.http.auth.password')}`).toString('base64')}`,
      };
    case 'header':
      return { [auth.name.toLowerCase()]: readSecret(auth.value, 'destination.http.auth.value') };
  }
}
