import type { ChangeEvent } from '../../src/model/change.js';

/**
 * A change event of key `id` at source position `lsn` (commit and event LSN alike), as the decoder
 * makes them; `overrides` sets anything else.
 */
export function changeAt(id: number, lsn: number | bigint, overrides: Partial<ChangeEvent> = {}): ChangeEvent {
  const at = BigInt(lsn);
  return {
    kind: 'change',
    entity: 's.t',
    key: { id },
    keyText: String(id),
    op: 'u',
    before: null,
    after: { id },
    position: { snapshot: false, commitLsn: at, lsn: at },
    txId: null,
    sourceTsMs: null,
    sourceTsUs: null,
    captureTsMs: null,
    fields: null,
    origin: { topic: 't', partition: 0, offset: String(lsn) },
    ...overrides,
  };
}

/**
 * A Debezium PostgreSQL change of `schema.table` as its JSON converter (schemas off) writes it to
 * Kafka: key `{ id }`, the row `{ id, v }`, at LSN `lsn` (its own transaction).
 */
export function debeziumJson(schema: string, table: string, op: 'c' | 'u', id: number, v: string, lsn: number): { key: string; value: string } {
  return {
    key: JSON.stringify({ id }),
    value: JSON.stringify({
      before: null,
      after: { id, v },
      source: {
        connector: 'postgresql',
        name: 'cdc',
        ts_ms: lsn,
        snapshot: 'false',
        db: 'src',
        sequence: `["${lsn - 8}","${lsn}"]`,
        schema,
        table,
        txId: lsn,
        lsn,
      },
      op,
      ts_ms: lsn + 1,
    }),
  };
}
