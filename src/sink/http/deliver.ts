import { setTimeout as sleep } from 'node:timers/promises';
import type { ChangeRequest } from './request.js';
import { retryAfterMs, type DestinationLimiter } from './limiter.js';
import type { RequestAttempt } from '../sink.js';

/** What became of one change's request, after as many attempts as it took. */
export type Delivery =
  | { outcome: 'acknowledged'; status: number; attempts: number }
  /** The API refused the change itself (400, 404, 409, 422 …): it goes to the DLQ, the key flows on. */
  | { outcome: 'refused'; status: number; attempts: number; excerpt: string }
  /** The API refused the credentials: nothing more is sent. */
  | { outcome: 'unauthorized'; status: number }
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

/**
 * Sends one change's request until the API answers for good: acknowledged (2xx; 404 to a DELETE,
 * the record being gone already), refused, unauthorized, or still unavailable after the attempts.
 * Every attempt carries the same idempotency key. 429 and 503 pause the whole destination for their
 * Retry-After; other transient failures back off with full jitter.
 */
export async function deliver(t: DeliveryTarget, r: ChangeRequest): Promise<Delivery> {
  let last = '';
  for (let attempt = 1; attempt <= t.maxAttempts; attempt++) {
    if (t.halted()) return { outcome: 'unavailable', attempts: attempt - 1, last: last || 'halted before sending' };
    const waitedMs = await t.limiter.acquire();
    const started = process.hrtime.bigint();
    let status = 0;
    let pause: number | undefined;
    try {
      const res = await fetch(requestUrl(t.baseUrl, r.path), {
        method: r.method,
        headers: { ...t.headers, [t.idempotencyHeader]: r.idempotencyKey, ...(r.body !== undefined ? { 'content-type': 'application/json' } : {}) },
        body: r.body,
        signal: AbortSignal.timeout(t.timeoutMs),
      });
      status = res.status;
      const text = await res.text().catch(() => '');
      if (res.ok || (status === 404 && r.method === 'DELETE')) {
        t.limiter.succeeded();
        return { outcome: 'acknowledged', status, attempts: attempt };
      }
      if (status === 401 || status === 403) return { outcome: 'unauthorized', status };
      if (!transient(status)) return { outcome: 'refused', status, attempts: attempt, excerpt: text.replace(/\s+/g, ' ').slice(0, EXCERPT_CHARS) };
      last = `${r.method} ${r.path} answered ${status}`;
      if (status === 429 || status === 503) {
        pause = Math.min(retryAfterMs(res.headers.get('retry-after')) ?? fullJitter(200, t.maxDelayMs, attempt), t.maxDelayMs);
        t.limiter.throttled(pause);
      }
    } catch (err) {
      const e = err as Error & { cause?: { code?: string } };
      last = `${r.method} ${r.path}: ${e.name === 'TimeoutError' ? `no answer within ${t.timeoutMs} ms` : (e.cause?.code ?? e.message)}`;
    } finally {
      t.onAttempt?.({ method: r.method, status, attempt, seconds: Number(process.hrtime.bigint() - started) / 1e9, waitedMs, throttled: pause !== undefined });
      t.limiter.release();
    }
    if (attempt < t.maxAttempts && pause === undefined)
      await sleep(fullJitter(100, t.maxDelayMs, attempt), undefined, { signal: t.signal }).catch(() => undefined);
  }
  return { outcome: 'unavailable', attempts: t.maxAttempts, last };
}
