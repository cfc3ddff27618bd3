import { describe, expect, it } from 'vitest';
import { columnAccepts, quoteIdent, sqlText, upsertStatement } from '../../src/sink/postgres/sql.js';

describe('SQL built from event names stays SQL', () => {
  it('quotes identifiers, doubling embedded quotes', () => {
    expect(quoteIdent('name')).toBe('"name"');
    expect(quoteIdent('a"; DROP TABLE x; --')).toBe('"a""; DROP TABLE x; --"');
  });

  it('passes every value as a parameter, never in the statement', () => {
    const sql = upsertStatement(
      { schema: 's', table: 't' },
      [
        { name: 'id', type: 'bigint' },
        { name: 'x"y', type: 'text' },
      ],
      ['id'],
      false,
    );
    expect(sql).toContain('unnest($1::text[], $2::text[])');
    expect(sql).toContain('"x""y" = EXCLUDED."x""y"');
    expect(sql).toContain('ON CONFLICT ("id") DO UPDATE');
    expect(upsertStatement({ schema: 's', table: 't' }, [{ name: 'id', type: 'bigint' }], ['id'], true)).toContain('DO NOTHING');
  });
});

describe("Debezium's value encodings become PostgreSQL text", () => {
  it('dates, timestamps and times', () => {
    expect(sqlText(19000, { type: 'int32', name: 'io.debezium.time.Date', optional: false })).toBe('2022-01-08');
    expect(sqlText(1_700_000_000_123_456n, { type: 'int64', name: 'io.debezium.time.MicroTimestamp', optional: false })).toBe('2023-11-14T22:13:20.123456');
    expect(sqlText(-1n, { type: 'int64', name: 'io.debezium.time.MicroTimestamp', optional: false })).toBe('1969-12-31T23:59:59.999999');
    expect(sqlText(3_723_000_001n, { type: 'int64', name: 'io.debezium.time.MicroTime', optional: false })).toBe('01:02:03.000001');
  });
  it('numbers, JSON and bytes', () => {
    expect(sqlText(12345678901234567890n, undefined)).toBe('12345678901234567890');
    expect(sqlText({ a: [1n] }, undefined)).toBe('{"a":["1"]}');
    expect(sqlText(Buffer.from([1, 255]), undefined)).toBe('\\x01ff');
    expect(sqlText(null, undefined)).toBeNull();
  });
});

describe('following the source into existing columns', () => {
  it('accepts widening and text, refuses narrowing', () => {
    expect(columnAccepts('bigint', { type: 'int32', optional: false })).toBe(true);
    expect(columnAccepts('integer', { type: 'int64', optional: false })).toBe(false);
    expect(columnAccepts('text', { type: 'int64', optional: false })).toBe(true);
    expect(columnAccepts('numeric(12,2)', { type: 'string', optional: false })).toBe(true);
    expect(columnAccepts('boolean', { type: 'float64', optional: false })).toBe(false);
  });
});
