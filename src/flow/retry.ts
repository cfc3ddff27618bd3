import { setTimeout as pause } from 'node:timers/promises';
import { DestinationUnavailable, RetriesExhausted } from '../model/errors.js';

export interface RetryPolicy {
  maxAttempts: number;
  initialDelayMs: number;
  maxDelayMs: number;
}

/** "Full jitter": a random wait up to the exponential bound, so retrying consumers do not move in lockstep. */
export function backoffDelay(policy: RetryPolicy, attempt: number, random: () => number = Math.random): number {
  const bound = Math.min(policy.maxDelayMs, policy.initialDelayMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * bound);
}

export interface RetryOptions {
  /** Aborted when the flow stops: a wait between attempts ends at once, throwing the signal's reason. */
  signal?: AbortSignal;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

/** Waits `ms`, or until `signal` aborts, then throws its reason. */
function sleepUnlessAborted(ms: number, signal?: AbortSignal): Promise<void> {
  return pause(ms, undefined, { signal }).catch((err: Error) => {
    throw signal?.aborted ? (signal.reason as Error) : err;
  });
}

/**
 * Runs `work`, retrying while it fails with an error marked retriable, up to the policy's attempts.
 * Anything else is thrown at once. A destination that does not answer at all (DestinationUnavailable)
 * is waited for past the attempts, at the policy's longest delays, until it answers or the flow
 * stops: `onRetry` is told `waiting` then.
 */
export async function withRetries<T>(
  policy: RetryPolicy,
  /** Given the attempt's number, from 1. */
  work: (attempt: number) => Promise<T>,
  onRetry: (err: Error, attempt: number, delayMs: number, waiting: boolean) => void,
  { signal, sleep = sleepUnlessAborted }: RetryOptions = {},
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await work(attempt);
    } catch (err) {
      const retriable = (err as { retriable?: boolean }).retriable === true;
      if (!retriable) throw err;
      const waiting = attempt >= policy.maxAttempts;
      if (waiting && !(err instanceof DestinationUnavailable)) throw new RetriesExhausted(attempt, err as Error);
      const delay = backoffDelay(policy, attempt - 1);
      onRetry(err as Error, attempt, delay, waiting);
      if (signal?.aborted) throw signal.reason as Error;
      await sleep(delay, signal);
    }
  }
}
