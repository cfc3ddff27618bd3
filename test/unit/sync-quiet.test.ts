import { describe, expect, it } from 'vitest';
import type { Admin } from 'kafkajs';
import { waitForSyncQuiet } from '../../src/demo/sync.js';
import type { FlowConfig } from '../../src/flow/config.js';

/** An admin on which the flow's topic appears only after `absentFor` topic listings, holding 2 records, both committed. */
function adminWithLateTopic(absentFor: number) {
  const calls = { listings: 0, offsets: 0 };
  const admin = {
    listTopics: async () => (++calls.listings > absentFor ? ['app.customers'] : []),
    fetchTopicOffsets: async () => {
      calls.offsets++;
      return [{ partition: 0, offset: '2', high: '2', low: '0' }];
    },
    fetchOffsets: async () => [{ topic: 'app.customers', partitions: [{ partition: 0, offset: '2' }] }],
  } as unknown as Admin;
  return { admin, calls };
}

const flow = { group: 'g', tables: [{ topic: 'app.customers' }] } as unknown as FlowConfig;

describe('waiting for a sync to be quiet', () => {
  it('waits for a topic the capture has not created yet instead of failing on it', async () => {
    const { admin, calls } = adminWithLateTopic(2);
    await waitForSyncQuiet(admin, [flow], async () => 'same', 0, 10_000);
    expect(calls.listings).toBeGreaterThan(2);
    expect(calls.offsets).toBe(calls.listings - 2);
  });

  it('names a topic that never appears when it gives up', async () => {
    const { admin } = adminWithLateTopic(Infinity);
    await expect(waitForSyncQuiet(admin, [flow], async () => 'same', 0, 600)).rejects.toThrow('app.customers:not created yet');
  });
});
