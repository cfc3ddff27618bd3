import { describe, expect, it } from 'vitest';
import { PartitionLanes } from '../../src/flow/lanes.js';

/** A batch of work that finishes when told to, recording when it started and ended. */
function gate(log: string[], name: string) {
  let open!: () => void;
  const opened = new Promise<void>((r) => (open = r));
  return {
    open,
    work: async () => {
      log.push(`${name} start`);
      await opened;
      log.push(`${name} end`);
    },
  };
}
const tick = () => new Promise((r) => setTimeout(r, 0));

/** Batch a in partition 0's lane and batch b in partition 1's, both still being written. */
async function twoPartitionsInHand() {
  const log: string[] = [];
  const lanes = new PartitionLanes();
  const [a, b] = [gate(log, 'a'), gate(log, 'b')];
  await lanes.handOff('t/0', a.work);
  await lanes.handOff('t/1', b.work);
  return { log, lanes, a, b };
}

describe('partition lanes', () => {
  it('return from a hand-off while the batch is still written: the next can be fetched meanwhile', async () => {
    const log: string[] = [];
    const lanes = new PartitionLanes();
    const a = gate(log, 'a');
    await lanes.handOff('t/0', a.work);
    expect(log).toEqual(['a start']);
    a.open();
    await lanes.drain();
    expect(log).toEqual(['a start', 'a end']);
  });

  it("never overlap a partition's batches, and keep their order", async () => {
    const log: string[] = [];
    const lanes = new PartitionLanes();
    const [a, b] = [gate(log, 'a'), gate(log, 'b')];
    await lanes.handOff('t/0', a.work);
    let handedOff = false;
    const second = lanes.handOff('t/0', b.work).then(() => (handedOff = true));
    await tick();
    expect(handedOff).toBe(false);
    expect(log).toEqual(['a start']);
    a.open();
    await second;
    expect(log).toEqual(['a start', 'a end', 'b start']);
    b.open();
    await lanes.drain();
    expect(log).toEqual(['a start', 'a end', 'b start', 'b end']);
  });

  it('let other partitions run alongside', async () => {
    const { log, lanes, a, b } = await twoPartitionsInHand();
    expect(log).toEqual(['a start', 'b start']);
    b.open();
    a.open();
    await lanes.drain();
    expect(log).toEqual(['a start', 'b start', 'b end', 'a end']);
  });

  it('drain waits for every batch in hand', async () => {
    const { log, lanes, a, b } = await twoPartitionsInHand();
    let drained = false;
    const draining = lanes.drain().then(() => (drained = true));
    a.open();
    await tick();
    expect(drained).toBe(false);
    b.open();
    await draining;
    expect(log).toContain('b end');
  });

  it("report a lane's failure at once, and throw it from that lane's next hand-off only, once", async () => {
    const reported: string[] = [];
    const lanes = new PartitionLanes((err, lane) => reported.push(`${lane}: ${(err as Error).message}`));
    await lanes.handOff('t/0', () => Promise.reject(new Error('a defect')));
    await lanes.drain();
    expect(reported).toEqual(['t/0: a defect']);
    // Another partition's batch is not refused for it.
    const ran: string[] = [];
    await lanes.handOff('t/1', async () => void ran.push('t/1'));
    await expect(lanes.handOff('t/0', async () => void ran.push('t/0 again'))).rejects.toThrow('a defect');
    await lanes.handOff('t/0', async () => void ran.push('t/0 after'));
    await lanes.drain();
    expect(ran).toEqual(['t/1', 't/0 after']);
  });
});
