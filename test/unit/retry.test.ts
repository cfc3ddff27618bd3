import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { backoffDelay, withRetries } from '../../src/flow/retry.js';
import { RetriesExhausted } from '../../src/model/errors.js';
import { DestinationUnavailable, FlowStopping, TransientSinkError, RowRejected } from '../../src/model/errors.js';

const policy = { maxAttempts: 4, initialDelayMs: 100, maxDelayMs: 1000 };

describe('retries with bounded exponential backoff and full jitter', () => {
  it('waits between 0 and min(cap, initial·2^attempt)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 60 }), fc.double({ min: 0, max: 0.9999999, noNaN: true }), (attempt, r) => {
        const d = backoffDelay(policy, attempt, () => r);
        return d >= 0 && d <= Math.min(1000, 100 * 2 ** attempt);
      }),
    );
  });

  it('retries a retriable failure until it passes', async () => {
    let calls = 0;
    const waits: number[] = [];
    const result = await withRetries(
      policy,
      async () => {
        if (++calls < 3) throw new TransientSinkError('connection reset');
        return 'ok';
      },
      (_e, _a, d) => waits.push(d),
      { sleep: async () => undefined },
    );
    expect(result).toBe('ok');
    expect(calls).toBe(3);
    expect(waits).toHaveLength(2);
  });

  it('gives up after maxAttempts, keeping the cause', async () => {
    const err = await withRetries(
      policy,
      async () => {
        throw new TransientSinkError('down');
      },
      () => undefined,
      { sleep: async () => undefined },
    ).catch((e) => e);
    expect(err).toBeInstanceOf(RetriesExhausted);
    expect((err as RetriesExhausted).attempts).toBe(4);
    expect((err as RetriesExhausted).last.message).toBe('down');
  });

  it('never retries a permanent failure', async () => {
    let calls = 0;
    await expect(
      withRetries(
        policy,
        async () => {
          calls++;
          throw new RowRejected('bad value');
        },
        () => undefined,
        { sleep: async () => undefined },
      ),
    ).rejects.toBeInstanceOf(RowRejected);
    expect(calls).toBe(1);
  });

  it('waits for a destination that does not answer past the attempts, telling each wait, until it answers', async () => {
    let calls = 0;
    const told: boolean[] = [];
    const result = await withRetries(
      policy,
      async () => {
        if (++calls < 10) throw new DestinationUnavailable('503 Service Unavailable');
        return 'ok';
      },
      (_e, _a, _d, waiting) => told.push(waiting),
      { sleep: async () => undefined },
    );
    expect(result).toBe('ok');
    expect(told).toEqual([false, false, false, true, true, true, true, true, true]);
  });

  it('ends a wait at once when the flow stops, throwing why', async () => {
    const stopping = new AbortController();
    const started = Date.now();
    setTimeout(() => stopping.abort(new FlowStopping()), 50);
    const err = await withRetries(
      { maxAttempts: 2, initialDelayMs: 60_000, maxDelayMs: 60_000 },
      async () => {
        throw new DestinationUnavailable('down');
      },
      () => undefined,
      { signal: stopping.signal },
    ).catch((e) => e);
    expect(err).toBeInstanceOf(FlowStopping);
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});
