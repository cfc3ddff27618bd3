import { describe, expect, it } from 'vitest';
import { columnAccepts, columnTypeFor, sqlValue, upsertStatement, utcDateTime } from '../../src/sink/mariadb/sql.js';
import { statementsOf } from '../../src/sink/mariadb/migrate.js';
import { classifyMariadbError } from '../../src/sink/mariadb/mariadb-errors.js';
import { RowRejected, TransientSinkError } from '../../src/model/errors.js';

describe('MariaDB statements and values', () => {
  it('writes instants in UTC, whatever zone Debezium sent them in', () => {
    expect(utcDateTime('2026-03-01T10:00:00.123456Z')).toBe('2026-03-01 10:00:00.123456');
    expect(utcDateTime('2026-03-01T00:30:00+02:00')).toBe('2026-02-28 22:30:00.000000');
    expect(utcDateTime('2026-03-01T10:00:00.1-0130')).toBe('2026-03-01 11:30:00.100000');
    expect(utcDateTime('not a time')).toBe('not a time');
  });

  it('passes values by what the column is: bytes as bytes, booleans as 1/0 for numbers, structures as JSON', () => {
    expect(sqlValue(Buffer.from([1, 2]), undefined, 'longblob')).toEqual(Buffer.from([1, 2]));
    expect(sqlValue(true, undefined, 'tinyint(1)')).toBe(1);
    expect(sqlValue(false, undefined, 'longtext')).toBe('false');
    expect(sqlValue({ a: 1n }, undefined, 'longtext')).toBe('{"a":"1"}');
    expect(sqlValue(20_000, { type: 'int32', name: 'io.debezium.time.Date', optional: false }, 'date')).toBe('2024-10-04');
    expect(sqlValue('2026-01-01T00:00:00Z', { type: 'string', name: 'io.debezium.time.ZonedTimestamp', optional: false }, 'datetime(6)')).toBe(
      '2026-01-01 00:00:00.000000',
    );
  });

  it('gives key columns bounded types (an index holds 3072 bytes) and others types that hold any value', () => {
    expect(columnTypeFor({ type: 'string', optional: false })).toBe('LONGTEXT');
    expect(columnTypeFor({ type: 'string', optional: false }, 1)).toBe('VARCHAR(768)');
    expect(columnTypeFor({ type: 'string', optional: false }, 2)).toBe('VARCHAR(384)');
    expect(columnTypeFor({ type: 'string', name: 'io.debezium.time.ZonedTimestamp', optional: false })).toBe('DATETIME(6)');
  });

  it('follows a source type into an existing column only where no value is lost', () => {
    expect(columnAccepts('bigint(20)', { type: 'int32', optional: false })).toBe(true);
    expect(columnAccepts('smallint(6)', { type: 'int64', optional: false })).toBe(false);
    expect(columnAccepts('varchar(10)', { type: 'int64', optional: false })).toBe(true);
    expect(columnAccepts('datetime(6)', { type: 'int64', name: 'io.debezium.time.MicroTimestamp', optional: false })).toBe(true);
    expect(columnAccepts('date', { type: 'boolean', optional: false })).toBe(false);
  });

  it('quotes every name, and a snapshot read never overwrites', () => {
    const sql = upsertStatement({ schema: 'shop', table: 'we`ird' }, ['id', 'v'], ['id'], 2, false);
    expect(sql).toBe('INSERT INTO `shop`.`we``ird` (`id`, `v`) VALUES (?, ?), (?, ?) ON DUPLICATE KEY UPDATE `v` = VALUES(`v`)');
    expect(upsertStatement({ schema: 's', table: 't' }, ['id', 'v'], ['id'], 1, true)).toMatch(/ON DUPLICATE KEY UPDATE `id` = `id`$/);
  });

  it('reads a migration as its statements, comments left out', () => {
    expect(statementsOf('-- a table\nCREATE TABLE a (x INT);\n\n-- another\nCREATE TABLE b (\n  -- why\n  y INT\n);\n')).toEqual([
      'CREATE TABLE a (x INT)',
      'CREATE TABLE b (\n\n  y INT\n)',
    ]);
  });

  it('tells retriable failures, row data errors and refused access apart by MariaDB error number', () => {
    expect(classifyMariadbError({ errno: 1213, message: 'Deadlock found' }, 'w')).toBeInstanceOf(TransientSinkError);
    expect(classifyMariadbError({ errno: 1205, message: 'Lock wait timeout' }, 'w')).toBeInstanceOf(TransientSinkError);
    expect(classifyMariadbError({ errno: 1406, message: 'Data too long' }, 'w')).toBeInstanceOf(RowRejected);
    expect(classifyMariadbError({ errno: 45028, message: 'pool timeout', cause: { errno: 1045, sqlMessage: 'Access denied' } }, 'w')).toMatchObject({
      family: 'config',
      message: 'w: Access denied (MariaDB error 1045)',
    });
  });
});
