import { describe, expect, it } from 'vitest';
import { mapFields, mapRow, type TableMapping } from '../../src/model/table.js';

const mapping = (m: Partial<TableMapping>): TableMapping => ({
  topic: 't',
  table: { schema: 'public', table: 'items' },
  rename: {},
  createIfMissing: true,
  ...m,
});
const row = { id: 1, name: 'a', secret: 'x' };

describe('mapping source rows to destination rows', () => {
  it('passes a row through untouched when the mapping keeps every column under its name', () => {
    const m = mapping({});
    expect(mapRow(m, row)).toBe(row);
    const fields = { id: { type: 'int64', optional: false } };
    expect(mapFields(m, fields)).toBe(fields);
    expect(row).toEqual({ id: 1, name: 'a', secret: 'x' });
  });

  it('renames, keeps and drops columns as the flow file says, leaving the source row as it was', () => {
    expect(mapRow(mapping({ rename: { name: 'title' } }), row)).toEqual({ id: 1, title: 'a', secret: 'x' });
    expect(mapRow(mapping({ include: ['id', 'name'] }), row)).toEqual({ id: 1, name: 'a' });
    expect(mapRow(mapping({ include: [] }), row)).toEqual({});
    expect(mapRow(mapping({ exclude: ['secret'] }), row)).toEqual({ id: 1, name: 'a' });
    expect(mapFields(mapping({ rename: { name: 'title' } }), { name: { type: 'string', optional: true } })).toEqual({
      title: { type: 'string', optional: true },
    });
    expect(row).toEqual({ id: 1, name: 'a', secret: 'x' });
  });
});
