import { describe, expect, it } from 'vitest';
import { CatchUpWatch } from '../../src/observe/catch-up.js';

describe('a backlog watched sample by sample', () => {
  it('tells the records behind, the pace the backlog shrinks at and the time left, then how long it took', () => {
    const w = new CatchUpWatch(1000);
    expect(w.sample(500, 0)).toBeUndefined();
    expect(w.sample(10_000, 1000)).toEqual({ state: 'catching-up', behind: 10_000, perSecond: -9500, secondsLeft: undefined });
    expect(w.sample(8000, 3000)).toEqual({ state: 'catching-up', behind: 8000, perSecond: 1000, secondsLeft: 8 });
    expect(w.sample(8000, 4000)).toMatchObject({ perSecond: 0, secondsLeft: undefined });
    expect(w.sample(100, 11_000)).toEqual({ state: 'caught-up', seconds: 10 });
    // Told once: within reach, nothing more to tell.
    expect(w.sample(50, 12_000)).toBeUndefined();
  });
});
