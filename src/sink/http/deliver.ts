import { setTimeout as sleep } from 'node:timers/promises';
import { versionRank, type ChangeRequest } from './request.js';
import type { HttpVersionSpec } from './settings.js';
import { retryAfterMs, type DestinationLimiter } from './limiter.js';
import type { RequestAttempt } from '../sink.js';

/** What became of one change's request, after as many attempts as it took. */
export type Delivery =
  | { outcome: 'acknowledged'; status: number; attempts: number }
  /** The API holds a version of the record not older than the change's (`held` when it was read): nothing changed. */
  | { outcome: 'stale'; status: number; attempts: number; held?: bigint }
  /** The API refused the change itself (400, 404, 409, 422 …): it goes to the DLQ, the key flows on. */
  | { outcome: 'refused'; status: number; attempts: number; excerpt: string }
  /** The API refused the credentials: nothing more is sent. */
  | { outcome: 'unauthorized'; status: number }
  /** The API cannot be written as the flow file says: nothing more is sent. */
  | { outcome: 'unusable'; problem: string; fix: string }
  /** Still failing (throttled, 5xx, timeouts, resets) when the attempts ran out: the batch is retried later. */
  | { outcome: 'unavailable'; attempts: number; last: string };

export interface DeliveryTarget {
  baseUrl: string;
  headers: Record<string, string>;
  idempotencyHeader: string;
  timeoutMs: number;
  maxAttempts: number;
  maxDelayMs: number;
  limiter: DestinationLimiter;
  /** Told of every attempt's end. */
  onAttempt?: (a: RequestAttempt) => void;
  /** Stops sending when set: a credentials failure elsewhere, or the flow closing. */
  halted: () => boolean;
  /** Aborted when the flow stops: a wait between attempts ends at once. */
  signal?: AbortSignal;
}

/** The excerpt of a refusal's body kept with its dead letter and history: bounded, one line. */
export const EXCERPT_CHARS = 300;

/** Statuses worth another attempt: the API is busy or down, not refusing the change. */
function transient(status: number): boolean {
  return status === 408 || status === 425 || status === 429 || status >= 500;
}

/** A random wait up to the exponential bound, so retrying keys do not move in lockstep. */
function fullJitter(initialMs: number, maxMs: number, attempt: number): number {
  return Math.floor(Math.random() * Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 30)));
}

/** Resolves `path` against the base URL, keeping the base's own path (`https://api/v2` + `/x` → `https://api/v2/x`). */
export function requestUrl(baseUrl: string, path: string): string {
  return `${baseUrl.replace(/\/+$/, '')}${path}`;
}

/** One exchange with the API: its answer, or why none came (status 0). */
interface Answer {
  status: number;
  text: string;
  etag: string | null;
  /** Set when the API asked the destination to wait (429, 503). */
  pause?: number;
  /** Why no answer came. */
  error?: string;
}

/** Sends one request under the destination's pace and concurrency, and tells the attempt. */
async function exchange(
  t: DeliveryTarget,
  attempt: number,
  request: { method: string; path: string; headers: Record<string, string>; body?: string },
): Promise<Answer> {
  const waitedMs = await t.limiter.acquire();
  const started = process.hrtime.bigint();
  const answer: Answer = { status: 0, text: '', etag: null };
  try {
    const res = await fetch(requestUrl(t.baseUrl, request.path), {
      method: request.method,
      headers: { ...request.headers, ...(request.body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: request.body,
      signal: AbortSignal.timeout(t.timeoutMs),
    });
    answer.status = res.status;
    answer.etag = res.headers.get('etag');
    answer.text = await res.text().catch(() => '');
    if (!transient(res.status)) t.limiter.succeeded();
    else if (res.status === 429 || res.status === 503) {
      answer.pause = Math.min(retryAfterMs(res.headers.get('retry-after')) ?? fullJitter(200, t.maxDelayMs, attempt), t.maxDelayMs);
      t.limiter.throttled(answer.pause);
    }
  } catch (err) {
    const e = err as Error & { cause?: { code?: string } };
    answer.error = `${request.method} ${request.path}: ${e.name === 'TimeoutError' ? `no answer within ${t.timeoutMs} ms` : (e.cause?.code ?? e.message)}`;
  } finally {
    t.onAttempt?.({
      method: request.method,
      status: answer.status,
      attempt,
      seconds: Number(process.hrtime.bigint() - started) / 1e9,
      waitedMs,
      throttled: answer.pause !== undefined,
    });
    t.limiter.release();
  }
  return answer;
}

/** A final answer that is no acknowledgement (credentials, a refusal), or undefined when another attempt may do. */
function failure(a: Answer, attempt: number): Delivery | undefined {
  if (a.status === 401 || a.status === 403) return { outcome: 'unauthorized', status: a.status };
  if (a.status === 0 || transient(a.status)) return undefined;
  return { outcome: 'refused', status: a.status, attempts: attempt, excerpt: a.text.replace(/\s+/g, ' ').slice(0, EXCERPT_CHARS) };
}

/**
 * check: etag. Reads the record: when the version it holds is not older than the change's, nothing
 * is sent; otherwise the write is made conditional on the record being as read (If-Match), or
 * still absent (If-None-Match: *). A DELETE of a record already gone is done.
 */
function afterRead(read: Answer, r: ChangeRequest, field: string, attempt: number): { done: Delivery } | { conditions: Record<string, string> } | undefined {
  if (read.status === 404)
    return r.method === 'DELETE' ? { done: { outcome: 'acknowledged', status: 404, attempts: attempt } } : { conditions: { 'if-none-match': '*' } };
  if (read.status < 200 || read.status > 299) {
    const failed = failure(read, attempt);
    return failed && { done: failed };
  }
  if (!read.etag)
    return {
      done: {
        outcome: 'unusable',
        problem: `version.check: etag, but GET ${r.path} answered without an ETag header`,
        fix: 'use version.check: api if the API compares versions itself, or remove version from the table',
      },
    };
  let record: unknown;
  try {
    record = JSON.parse(read.text);
  } catch {
    record = undefined;
  }
  const held = versionRank((record as Record<string, unknown> | undefined)?.[field]);
  if (held !== undefined && r.version !== undefined && held >= BigInt(r.version))
    return { done: { outcome: 'stale', status: read.status, attempts: attempt, held } };
  return { conditions: { 'if-match': read.etag } };
}

/** What the write's answer settles: acknowledged, stale by the API's version, refused; undefined to try again. */
function afterWrite(a: Answer, r: ChangeRequest, version: HttpVersionSpec | undefined, attempt: number): Delivery | undefined {
  if ((a.status >= 200 && a.status <= 299) || (a.status === 404 && r.method === 'DELETE'))
    return { outcome: 'acknowledged', status: a.status, attempts: attempt };
  // The record changed between the read and the write: read it again.
  if (version?.check === 'etag' && a.status === 412) return undefined;
  if (version?.check === 'api' && version.staleStatuses.includes(a.status)) return { outcome: 'stale', status: a.status, attempts: attempt };
  return failure(a, attempt);
}

/**
 * Sends one change's request until the API answers for good: acknowledged (2xx; 404 to a DELETE,
 * the record being gone already), stale (the API holds a version not older), refused,
 * unauthorized, or still unavailable after the attempts. Every attempt carries the same
 * idempotency key. 429 and 503 pause the whole destination for their Retry-After; other transient
 * failures back off with full jitter.
 */
export async function deliver(t: DeliveryTarget, r: ChangeRequest, version?: HttpVersionSpec): Promise<Delivery> {
  let last = '';
  const headers = { ...t.headers, ...r.headers };
  for (let attempt = 1; attempt <= t.maxAttempts; attempt++) {
    if (t.halted()) return { outcome: 'unavailable', attempts: attempt - 1, last: last || 'halted before sending' };
    let answer: Answer | undefined;
    let conditions: Record<string, string> = {};
    if (version?.check === 'etag') {
      const read = await exchange(t, attempt, { method: 'GET', path: r.path, headers });
      const step = afterRead(read, r, version.field!, attempt);
      if (step && 'done' in step) return step.done;
      if (step) conditions = step.conditions;
      else answer = read;
    }
    if (!answer) {
      answer = await exchange(t, attempt, {
        method: r.method,
        path: r.path,
        headers: { ...headers, ...conditions, [t.idempotencyHeader]: r.idempotencyKey },
        body: r.body,
      });
      const settled = afterWrite(answer, r, version, attempt);
      if (settled) return settled;
    }
    last = answer.error ?? `${r.method} ${r.path} answered ${answer.status}`;
    // A precondition that failed is read again at once: only another writer's edit came between.
    if (answer.status === 412) continue;
    if (attempt < t.maxAttempts && answer.pause === undefined)
      await sleep(fullJitter(100, t.maxDelayMs, attempt), undefined, { signal: t.signal }).catch(() => undefined);
  }
  return { outcome: 'unavailable', attempts: t.maxAttempts, last };
}
