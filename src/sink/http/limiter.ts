import { setTimeout as sleep } from 'node:timers/promises';

/**
 * One destination's pace: at most `concurrency` requests in flight, at most `rate` starts per
 * second, and a pause for everyone when the API asks for one (429/503 with Retry-After). After a
 * throttle the rate halves, then climbs back a step per success (additive increase, multiplicative
 * decrease), so a storm of 429s slows the whole destination instead of every key retrying at once.
 */
export class DestinationLimiter {
  private inFlight = 0;
  private readonly waiting: (() => void)[] = [];
  private pausedUntil = 0;
  private nextStart = 0;
  /** Start times of the last second's requests: the rate achieved when a throttle comes. */
  private starts: number[] = [];
  /** Current requests per second; Infinity while no limit applies. */
  private current: number;

  constructor(
    private readonly concurrency: number,
    /** The configured rate (requests per second), or undefined for none. */
    private readonly ceiling: number | undefined,
    private readonly clock: () => number = Date.now,
  ) {
    this.current = ceiling ?? Infinity;
  }

  get rate(): number {
    return this.current;
  }

  get active(): number {
    return this.inFlight;
  }

  /** Waits for a slot, the destination's pause and the rate; returns how long it waited for the pause and rate (ms). */
  async acquire(): Promise<number> {
    if (this.inFlight >= this.concurrency) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.inFlight++;
    let waited = 0;
    for (;;) {
      const now = this.clock();
      const at = Math.max(this.pausedUntil, Number.isFinite(this.current) ? this.nextStart : 0);
      if (at <= now) break;
      waited += at - now;
      await sleep(at - now);
    }
    const now = this.clock();
    if (Number.isFinite(this.current)) this.nextStart = Math.max(now, this.nextStart) + 1000 / this.current;
    this.starts.push(now);
    while (this.starts[0]! <= now - 1000) this.starts.shift();
    return waited;
  }

  release(): void {
    this.inFlight--;
    this.waiting.shift()?.();
  }

  /** The API asked to slow down: pause everyone for `retryAfterMs`, and halve the rate from what was achieved. */
  throttled(retryAfterMs: number): void {
    const now = this.clock();
    this.pausedUntil = Math.max(this.pausedUntil, now + retryAfterMs);
    const achieved = this.starts.filter((t) => t > now - 1000).length;
    const from = Math.min(this.current, Math.max(achieved, 1));
    this.current = Math.max(from / 2, 0.5);
  }

  /** A request succeeded: one step back towards the configured rate (none, when none was configured and the step passes it). */
  succeeded(): void {
    if (!Number.isFinite(this.current)) return;
    const step = Math.max(this.current / 20, 0.5);
    const next = this.current + step;
    this.current = this.ceiling === undefined ? (next >= 1000 ? Infinity : next) : Math.min(next, this.ceiling);
  }
}

/**
 * A Retry-After header in ms: delta-seconds or an HTTP date; undefined when absent or unreadable.
 * RFC 9110 §10.2.3.
 */
export function retryAfterMs(header: string | null, now: number = Date.now()): number | undefined {
  if (header === null || header.trim() === '') return undefined;
  if (/^\d+$/.test(header.trim())) return Number(header.trim()) * 1000;
  const at = Date.parse(header);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}
