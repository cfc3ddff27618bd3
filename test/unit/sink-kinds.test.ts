import { describe, expect, it } from 'vitest';
import { openSink, sinkKindFor } from '../../src/sink/kinds.js';

describe('kinds of destination, chosen by the URL', () => {
  it('serves postgres:// and postgresql:// with every capability', () => {
    for (const url of ['postgres://u@127.0.0.1:5432/db', 'postgresql://u@127.0.0.1:5432/db', 'POSTGRES://u@h/db']) {
      expect(sinkKindFor(url)?.kind).toBe('postgres');
    }
    const sink = openSink('postgres://u@127.0.0.1:1/db', { name: 'kinds-test', connections: 1 });
    expect(sink.kind).toBe('postgres');
    expect(sink.capabilities).toEqual({ transactions: true, governance: true, truncate: true, reconcile: true });
    return sink.close();
  });
});
