import { describe, expect, it } from 'vitest';
import { evaluateLag, partitionLag, type LagSample } from '../../src/observe/lag-status.js';

const sample = (at: number, ...parts: [number, number | null, number][]): LagSample => ({
  at,
  partitions: parts.map(([partition, committed, high]) => ({
    topic: 't',
    partition,
    committed: committed === null ? null : BigInt(committed),
    low: 0n,
    high: BigInt(high),
    lag: partitionLag(committed === null ? null : BigInt(committed), 0n, BigInt(high)),
  })),
});

describe('judging consumer lag over a window', () => {
  it('is OK when a partition caught up at some point', () => {
    expect(evaluateLag([sample(0, [0, 5, 10]), sample(1, [0, 10, 10]), sample(2, [0, 12, 15])]).status).toBe('OK');
  });
  it('is STALLED when the committed offset never moves while behind', () => {
    const v = evaluateLag([sample(0, [0, 5, 10]), sample(1, [0, 5, 12]), sample(2, [0, 5, 12])]);
    expect(v.status).toBe('STALLED');
    expect(v.reason).toContain('t/0');
  });
  it('is WARN when the lag grows at every sample though the consumer moves', () => {
    expect(evaluateLag([sample(0, [0, 5, 10]), sample(1, [0, 6, 20]), sample(2, [0, 7, 30])]).status).toBe('WARN');
  });
  it('is OK when consuming and keeping pace', () => {
    expect(evaluateLag([sample(0, [0, 5, 10]), sample(1, [0, 9, 12]), sample(2, [0, 11, 14])]).status).toBe('OK');
  });
  it('takes the worst partition, and is ERR with nothing committed', () => {
    expect(evaluateLag([sample(0, [0, 5, 5], [1, 3, 9]), sample(1, [0, 6, 6], [1, 3, 9])]).status).toBe('STALLED');
    expect(evaluateLag([{ at: 0, partitions: [] }]).status).toBe('ERR');
  });
  it('is REWIND when the committed offset goes back, whatever else', () => {
    const v = evaluateLag([sample(0, [0, 8, 10]), sample(1, [0, 2, 10]), sample(2, [0, 10, 10])]);
    expect(v.status).toBe('REWIND');
    expect(v.reason).toBe('t/0: committed offset went back from 8 to 2');
  });
  it('is STOPPED when behind and no member owns the partition; owners are told per partition', () => {
    const owner = { consumerId: 'member-1', host: '/127.0.0.1' };
    const window = [sample(0, [0, 5, 10], [1, 3, 3]), sample(1, [0, 5, 10], [1, 3, 3])];
    const stopped = evaluateLag(window, new Map());
    expect(stopped.partitions.map((p) => p.status)).toEqual(['STOPPED', 'OK']);
    expect(stopped.status).toBe('STOPPED');
    const owned = evaluateLag(window, new Map([['t/0', owner]]));
    expect(owned.partitions.map((p) => [p.status, p.owner, p.committed, p.high])).toEqual([
      ['STALLED', owner, 5n, 10n],
      ['OK', null, 3n, 3n],
    ]);
  });
  it('counts everything retained as lag before the first commit', () => {
    expect(partitionLag(null, 3n, 10n)).toBe(7n);
    expect(partitionLag(1n, 3n, 10n)).toBe(7n);
  });
});
