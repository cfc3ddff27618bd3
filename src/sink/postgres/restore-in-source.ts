import type pg from 'pg';
import type { ChangeEvent } from '../../model/change.js';
import type { HistoryRow } from '../../model/history-row.js';
import { positionRank } from '../../order/position.js';
import { CURRENT_XID, RECORD_OUTBOUND } from './governed-sql.js';
import { inTransaction, recordHistory } from './postgres-sink.js';
import type { TableMapping } from '../../model/table.js';
import { eventRow } from '../../history/history.js';
import { quoteIdent } from './sql.js';
import type { Governance } from '../governance.js';
import { jsonable } from './governed-history.js';

/**
 * A record the source deleted, to be put back there as the destination holds it: the delete lost to
 * a concurrent change here, and the destination's row already carries every earlier change of the
 * source (this flow reads the source in order).
 */
export interface PendingRestore {
  idempotencyKey: string;
  flow: string;
  entity: string;
  keyText: string;
  /** The system whose change kept the record (the destination's): the restore's write is its. */
  originSystem: string;
  /** The whole row, in the source's column names. */
  row: Record<string, unknown>;
  /** Its non-key fields: what the other direction starts from as agreed. */
  values: Record<string, unknown>;
  /** The history row of the restore, told in the source database once it is done. */
  history: HistoryRow;
}

/** The restore a decision asks for, in the source's terms. */
export function pendingRestore(m: TableMapping, g: Governance, e: ChangeEvent, destValues: Record<string, unknown>): PendingRestore {
  const sourceName = Object.fromEntries(Object.entries(m.rename).map(([src, dst]) => [dst, src]));
  const row = Object.fromEntries(Object.entries(destValues).map(([c, v]) => [sourceName[c] ?? c, v]));
  const keyColumns = new Set(Object.keys(e.key));
  return {
    idempotencyKey: `restore:${g.flow}:${e.entity}:${e.keyText}:${positionRank(e.position)}`,
    flow: g.flow,
    entity: e.entity,
    keyText: e.keyText,
    originSystem: g.destinationSystem,
    row,
    values: Object.fromEntries(Object.entries(row).filter(([c]) => !keyColumns.has(c))),
    history: jsonable(
      eventRow(
        e.entity,
        e,
        'applied',
        `restored: ${g.sourceSystem}'s delete lost to a concurrent change in ${g.destinationSystem} (${g.policy.entity} default: ${g.policy.default.strategy}); the record is back as ${g.destinationSystem} holds it`,
      ),
    ) as HistoryRow,
  };
}

/**
 * Remembers a restore in the destination, inside the decision's transaction and savepoint: a decision
 * rolled back takes its restore with it. The source is written only after the commit (restorePending).
 */
export async function holdRestore(client: pg.PoolClient, r: PendingRestore): Promise<void> {
  await client.query(
    `INSERT INTO trustsync.pending_restores (idempotency_key, flow, entity, key, origin_system, source_row, source_values, history)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (idempotency_key) DO NOTHING`,
    [r.idempotencyKey, r.flow, r.entity, r.keyText, r.originSystem, JSON.stringify(r.row), JSON.stringify(r.values), JSON.stringify(r.history)],
  );
}

/**
 * Carries out a flow's restores whose decisions have committed in the destination, oldest first:
 * each in its own source transaction, with the write record that makes its capture an echo, then
 * removed here. Done once per restore (the write record's idempotency key), however often this runs
 * — after each batch, and at start for any a stopped flow left. Returns how many were carried out.
 */
export async function restorePending(destination: pg.Pool, sourceDb: pg.Pool, flow: string): Promise<number> {
  // Read straight into PendingRestore's shape: the columns are its fields under their SQL names.
  const { rows } = await destination.query<PendingRestore>(
    `SELECT idempotency_key AS "idempotencyKey", flow, entity, key AS "keyText", origin_system AS "originSystem",
            source_row AS "row", source_values AS "values", history
       FROM trustsync.pending_restores WHERE flow = $1 ORDER BY created_at`,
    [flow],
  );
  for (const r of rows) {
    await restoreInSource(sourceDb, r);
    await destination.query('DELETE FROM trustsync.pending_restores WHERE idempotency_key = $1', [r.idempotencyKey]);
  }
  return rows.length;
}

/** Puts the record back into the source (a key taken again since is left alone), in one source transaction. */
async function restoreInSource(sourceDb: pg.Pool, r: PendingRestore): Promise<void> {
  const [schema, table] = [r.entity.slice(0, r.entity.indexOf('.')), r.entity.slice(r.entity.indexOf('.') + 1)];
  const source = `${quoteIdent(schema)}.${quoteIdent(table)}`;
  await inTransaction(sourceDb, `restoring ${r.entity} key ${r.keyText} in the source`, async (client) => {
    const done = await client.query('SELECT 1 FROM trustsync.outbound WHERE idempotency_key = $1', [r.idempotencyKey]);
    const inserted = done.rowCount
      ? { rowCount: 0 }
      : await client.query(`INSERT INTO ${source} SELECT * FROM jsonb_populate_record(NULL::${source}, $1::jsonb) ON CONFLICT DO NOTHING`, [
          JSON.stringify(r.row),
        ]);
    if (!inserted.rowCount) return;
    const xid = (await client.query<{ xid: string }>(CURRENT_XID)).rows[0]!.xid;
    await client.query(RECORD_OUTBOUND, [
      r.entity,
      r.keyText,
      xid,
      r.flow,
      r.originSystem,
      null,
      null,
      JSON.stringify(r.values),
      Object.keys(r.values),
      'insert',
      '{}',
      r.idempotencyKey,
    ]);
    await client.query(
      `INSERT INTO trustsync.row_state (target, key, known_xid, known_values) VALUES ($1, $2, $3, $4)
       ON CONFLICT (target, key) DO UPDATE SET known_xid = EXCLUDED.known_xid, known_values = EXCLUDED.known_values, local_edits = '{}'::jsonb, changed_at = now()`,
      [r.entity, r.keyText, xid, JSON.stringify(r.values)],
    );
    await recordHistory(client, r.flow, [{ ...r.history, op: 'c', txId: xid, newValues: r.values }]);
  });
}
