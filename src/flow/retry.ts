import { RetriesExhausted } from '../model/errors.js';

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

/**
 * Runs `work`, retrying while it fails with an error marked retriable, up to the policy's attempts.
 * Anything else is thrown at once.
 */
export async function withRetries<T>(
  policy: RetryPolicy,
  /** Given the attempt's number, from 1. */
  work: (attempt: number) => Promise<T>,
  onRetry: (err: Error, attempt: number, delayMs: number) => void,
  sleep: (ms: number) => Promise<void> = (ms) => new Promise((r) => setTimeout(r, ms)),
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await work(attempt);
    } catch (err) {
      const retriable = (err as { retriable?: boolean }).retriable === true;
      if (!retriable) throw err;
      if (attempt >= policy.maxAttempts) throw new RetriesExhausted(attempt, err as Error);
      const delay = backoffDelay(policy, attempt - 1);
      onRetry(err as Error, attempt, delay);
      await sleep(delay);
    }
  }
}
