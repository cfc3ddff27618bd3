import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { validateFlow, loadFlowFile, FlowConfigError } from '../../src/flow/config.js';
import { PACKAGE_DIR } from '../../src/stack/settings.js';

const valid = {
  flow: 'shop',
  source: { brokers: ['127.0.0.1:19092'], decoding: 'json' },
  destination: { url: 'postgres://postgres@127.0.0.1:15432/trustsync_dest', tables: [{ topic: 'cdc.shop.demo.customers', table: 'shop.customers' }] },
};

function problems(doc: unknown): string[] {
  try {
    validateFlow(doc, 'flow.yaml');
  } catch (err) {
    if (err instanceof FlowConfigError) return err.problems;
    throw err;
  }
  return [];
}

describe('flow files are validated once, at start', () => {
  it('fills defaults for a minimal flow', () => {
    const c = validateFlow(valid, 'flow.yaml');
    expect(c.group).toBe('trustsync-shop');
    expect(c.dlqTopic).toBe('trustsync.dlq.shop');
    expect(c.truncate).toBe('stop');
    expect(c.batch).toEqual({ maxRows: 1000, maxWaitMs: 200 });
    expect(c.tables[0]!.table).toEqual({ schema: 'shop', table: 'customers' });
    expect(c.tombstoneRetentionMs).toBe(7 * 86_400_000);
    expect(c.historyRetentionMs).toBe(90 * 86_400_000);
  });

  it('lists every problem at once, each by field path with what to write', () => {
    const list = problems({
      ...valid,
      source: { brokers: ['nohost'], decoding: 'xml' },
      destination: { url: 'mysql://x', tables: [] },
      batch: { maxRows: 0 },
      extra: true,
    });
    expect(list.some((p) => p.startsWith('source.brokers.0:'))).toBe(true);
    expect(list.some((p) => p.startsWith('source.decoding:') && p.includes('json (Kafka Connect JsonConverter) or avro'))).toBe(true);
    expect(list.some((p) => p.startsWith('destination.url:'))).toBe(true);
    expect(list.some((p) => p.startsWith('destination.tables:'))).toBe(true);
    expect(list.some((p) => p.startsWith('batch.maxRows:'))).toBe(true);
    expect(list.some((p) => p.includes('unknown field extra'))).toBe(true);
  });

  it('names a missing field and asks for it', () => {
    expect(problems({ ...valid, flow: undefined })).toContain('flow: missing — add it');
  });

  it('needs a registry for Avro', () => {
    expect(problems({ ...valid, source: { ...valid.source, decoding: 'avro' } })[0]).toMatch(/^source.registryUrl: missing/);
  });

  it('reads durations in words', () => {
    const c = validateFlow({ ...valid, batch: { maxRows: 10, maxWaitMs: '2s' }, tombstoneRetention: '36h' }, 'f');
    expect(c.batch.maxWaitMs).toBe(2000);
    expect(c.tombstoneRetentionMs).toBe(36 * 3_600_000);
  });

  it('the shipped demo flow is valid', () => {
    const c = loadFlowFile(join(PACKAGE_DIR, 'flows', 'shop.yaml'), {});
    expect(c.tables.map((t) => t.topic)).toEqual(['cdc.shop.demo.customers', 'cdc.shop.demo.orders']);
    expect(c.brokers).toEqual(['127.0.0.1:19092']);
  });
});
