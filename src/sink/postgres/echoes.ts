import type pg from 'pg';
import type { ChangeEvent } from '../../model/change.js';
import { TrustsyncError } from '../../model/errors.js';
import type { Values } from '../../policy/resolve.js';
import { classifyPgError } from './pg-errors.js';
import { FIND_OUTBOUND } from './governed-sql.js';
import { echoKey, type EchoRecord } from '../governance.js';

/**
 * Finds which of a batch's captured changes are trustsync's own writes into their source database,
 * by the transaction id Debezium reports (source.txId) and the record's key.
 */
export async function findEchoes(sourceDb: pg.Pool, sourceTable: string, events: readonly ChangeEvent[]): Promise<Map<string, EchoRecord>> {
  const withTx = events.filter((e) => e.txId !== null);
  if (withTx.length === 0) return new Map();
  const { rows } = await sourceDb
    .query<{ key: string; xid: string; origin_system: string; origin_position: string | null; origin_tx_id: string | null; origin_values: Values | null }>(
      FIND_OUTBOUND,
      [sourceTable, withTx.map((e) => e.keyText), withTx.map((e) => e.txId)],
    )
    .catch((err) => {
      throw err instanceof TrustsyncError ? err : classifyPgError(err, `looking up trustsync's writes into the source (${sourceTable})`);
    });
  return new Map(
    rows.map((r) => [
      echoKey(r.key, r.xid),
      {
        xid: r.xid,
        originSystem: r.origin_system,
        originPosition: r.origin_position === null ? null : BigInt(r.origin_position),
        originTxId: r.origin_tx_id,
        originValues: r.origin_values,
      },
    ]),
  );
}
