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
