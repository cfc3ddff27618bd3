import { describe, expect, it } from 'vitest';
import { openSink, sinkKindFor } from '../../src/sink/kinds.js';
import { poolOptions } from '../../src/sink/mariadb/kind.js';

describe('kinds of destination, chosen by the URL', () => {
  it('serves postgres:// and postgresql:// with every capability', () => {
    for (const url of ['postgres://u@127.0.0.1:5432/db', 'postgresql://u@127.0.0.1:5432/db', 'POSTGRES://u@h/db']) {
      expect(sinkKindFor(url)?.kind).toBe('postgres');
    }
    const sink = openSink('postgres://u@127.0.0.1:1/db', { name: 'kinds-test', connections: 1 });
    expect(sink.kind).toBe('postgres');
    expect(sink.capabilities).toEqual({ transactions: true, governance: true, fieldAuthority: true, truncate: true, reconcile: true, everyChange: false });
    return sink.close();
  });

  it('serves mariadb:// and mysql:// with transactions and reconcile, but no field-level policies or TRUNCATE', () => {
    for (const url of ['mariadb://u@127.0.0.1:3306/db', 'mysql://u@127.0.0.1:3306/db']) expect(sinkKindFor(url)?.kind).toBe('mariadb');
    const sink = openSink('mariadb://u:p%40ss@127.0.0.1:1/shop', { name: 'kinds-test', connections: 1 });
    expect(sink.kind).toBe('mariadb');
    expect(sink.capabilities).toEqual({ transactions: true, governance: false, fieldAuthority: false, truncate: false, reconcile: true, everyChange: false });
    return sink.close();
  });

  it('serves http:// and https:// APIs, each change sent in order, with its ledger in a control database; nothing to read back', () => {
    for (const url of ['http://127.0.0.1:8080', 'https://api.example.com/v2']) expect(sinkKindFor(url)?.kind).toBe('http');
    const settings = {
      control: 'postgres://u@127.0.0.1:1/ctl',
      concurrency: 2,
      timeoutMs: 1000,
      idempotencyHeader: 'Idempotency-Key',
      maxAttempts: 2,
      maxDelayMs: 100,
      tables: {},
    };
    const sink = openSink('https://api.example.com/v2', { name: 'kinds-test', connections: 1, settings });
    expect(sink.kind).toBe('http');
    expect(sink.capabilities).toEqual({ transactions: false, governance: false, fieldAuthority: true, truncate: false, reconcile: false, everyChange: true });
    expect(() => openSink('https://api.example.com/v2', { name: 'kinds-test', connections: 1 })).toThrow(/destination\.http: missing/);
    return sink.close();
  });

  it('reads user, password, host, port and database from a MariaDB URL', () => {
    expect(poolOptions('mysql://app:p%40ss@db.internal:3307/shop', { name: 'n', connections: 3 })).toMatchObject({
      host: 'db.internal',
      port: 3307,
      user: 'app',
      password: 'p@ss',
      database: 'shop',
      connectionLimit: 3,
    });
    expect(() => poolOptions('mariadb://', { name: 'n', connections: 1 })).toThrow(/destination\.url/);
  });
});
