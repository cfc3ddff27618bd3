import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { ConfigError } from '../../model/errors.js';
import type { FieldAuthority } from './authority.js';

/*
 * What a flow file says about an HTTP destination: the control database that keeps the position
 * ledger and the history, authentication, limits, and per table the requests for an upsert and a
 * delete. Parsed with the rest of the flow file; secrets are named here (an environment variable
 * or a file), read only when the sink opens, and never printed.
 */

const secretRef = z
  .strictObject({ env: z.string().min(1).optional(), file: z.string().min(1).optional() })
  .refine((s) => (s.env === undefined) !== (s.file === undefined), { message: 'name the secret with env (a variable) or file (a path), one of them' });

export const httpAuthSpec = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('bearer'), token: secretRef }),
  z.strictObject({ type: z.literal('basic'), username: z.string().min(1), password: secretRef }),
  z.strictObject({ type: z.literal('header'), name: z.string().regex(/^[A-Za-z0-9-]+$/, { message: 'an HTTP header name' }), value: secretRef }),
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
  headers: z.record(z.string().regex(/^[A-Za-z0-9-]+$/, { message: 'an HTTP header name' }), z.string()).default({}),
  /** latest: only the newest change per key of a batch is sent; every: each change, in source order. */
  deliver: z.enum(['latest', 'every']).default('latest'),
});

export const httpDestinationSpec = z.strictObject({
  /** The PostgreSQL database that keeps the ledger and the history: the API cannot join a transaction. */
  control: z.string().regex(/^postgres(ql)?:\/\//, { message: 'a postgres:// URL of the database that keeps the ledger and history' }),
  auth: httpAuthSpec.optional(),
  timeoutMs: z.number().int().min(1).max(600_000).default(10_000),
  concurrency: z.number().int().min(1).max(256).default(8),
  /** Requests per second at most, for the whole destination; absent: unlimited (429s still slow it down). */
  rateLimit: z.number().positive().max(100_000).optional(),
  idempotencyHeader: z
    .string()
    .regex(/^[A-Za-z0-9-]+$/, { message: 'an HTTP header name' })
    .default('Idempotency-Key'),
  /** Attempts per request before the batch is handed back to the flow's retry. */
  maxAttempts: z.number().int().min(1).max(100).default(6),
  /** The longest wait between attempts, a Retry-After included. */
  maxDelayMs: z.number().int().min(1).max(600_000).default(30_000),
});

export type HttpAuthSpec = z.infer<typeof httpAuthSpec>;
export type HttpTableSpec = z.infer<typeof httpTableSpec>;
export type HttpRequestSpec = z.infer<typeof requestSpec>;

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

/** A secret's value, from its variable or file; `field` names it in the flow file for the message. */
export function readSecret(ref: { env?: string; file?: string }, field: string): string {
  if (ref.env !== undefined) {
    const value = process.env[ref.env];
    if (value === undefined || value === '')
      throw new ConfigError('missing-secret', `${field}: the environment variable ${ref.env} is not set`, `export ${ref.env} before starting the flow`);
    return value;
  }
  try {
    return readFileSync(ref.file!, 'utf8').trim();
  } catch (err) {
    throw new ConfigError(
      'missing-secret',
      `${field}: ${ref.file} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
      'put the secret in that file',
    );
  }
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
