import { describe, expect, it } from 'vitest';
import type { Admin } from 'kafkajs';
import { topicOffsets } from '../../src/kafka/topics.js';

/** An admin whose offset answers are scripted: an error `type` is thrown as kafkajs throws it. */
function scriptedAdmin(answers: (string | 'offsets')[]) {
  const calls = { offsets: 0, metadata: 0 };
  const admin = {
    fetchTopicOffsets: async () => {
      const answer = answers[calls.offsets++];
      if (answer === 'offsets') return [{ partition: 0, offset: '5', high: '5', low: '0' }];
      throw Object.assign(new Error(answer), { type: answer, retriable: true });
    },
    fetchTopicMetadata: async () => {
      calls.metadata++;
      return { topics: [] };
    },
  } as unknown as Admin;
  return { admin, calls };
}

describe('topic offsets while a leader settles', () => {
  it('asks again, with fresh metadata, while the leader is not serving yet', async () => {
    const { admin, calls } = scriptedAdmin(['NOT_LEADER_FOR_PARTITION', 'LEADER_NOT_AVAILABLE', 'offsets']);
    expect(await topicOffsets(admin, 't')).toEqual([{ partition: 0, offset: '5', high: '5', low: '0' }]);
    expect(calls).toEqual({ offsets: 3, metadata: 2 });
  });

  it('passes any other failure on at once', async () => {
    const { admin, calls } = scriptedAdmin(['UNKNOWN_TOPIC_OR_PARTITION', 'offsets']);
    await expect(topicOffsets(admin, 't')).rejects.toThrow('UNKNOWN_TOPIC_OR_PARTITION');
    expect(calls.offsets).toBe(1);
  });

  it('gives up on a leader that never settles, with the broker answer', async () => {
    const { admin } = scriptedAdmin(Array(100).fill('NOT_LEADER_FOR_PARTITION'));
    await expect(topicOffsets(admin, 't', 300)).rejects.toThrow('NOT_LEADER_FOR_PARTITION');
  });
});
