import type pg from 'pg';
import type { ChangeEvent } from '../../model/change.js';
import { positionRank } from '../../order/position.js';
import { CURRENT_XID, RECORD_OUTBOUND } from './governed-sql.js';
import { inTransaction, recordHistory } from './postgres-sink.js';
import type { TableMapping } from '../../model/table.js';
import { eventRow } from '../../history/history.js';
import { quoteIdent } from './sql.js';
import type { Governance } from '../governance.js';

/**
 * Puts a record the source deleted back into the source, as the destination holds it: the delete lost
 * to a concurrent change here, and the destination's row already carries every earlier change of the
 * source (this flow reads the source in order). Its own transaction in the source database, with the
 * write record that makes its capture an echo and the agreed values the other direction starts from;
 * done once per delete, however often the batch is retried.
 */
export async function restoreInSource(sourceDb: pg.Pool, m: TableMapping, g: Governance, e: ChangeEvent, destValues: Record<string, unknown>): Promise<void> {
  const sourceName = Object.fromEntries(Object.entries(m.rename).map(([src, dst]) => [dst, src]));
  const row = Object.fromEntries(Object.entries(destValues).map(([c, v]) => [sourceName[c] ?? c, v]));
  const keyColumns = new Set(Object.keys(e.key));
  const values = Object.fromEntries(Object.entries(row).filter(([c]) => !keyColumns.has(c)));
  const [schema, table] = [e.entity.slice(0, e.entity.indexOf('.')), e.entity.slice(e.entity.indexOf('.') + 1)];
  const source = `${quoteIdent(schema)}.${quoteIdent(table)}`;
  const idempotencyKey = `restore:${g.flow}:${e.entity}:${e.keyText}:${positionRank(e.position)}`;
  await inTransaction(sourceDb, `restoring ${e.entity} key ${e.keyText} in ${g.sourceSystem}`, async (client) => {
    const done = await client.query('SELECT 1 FROM trustsync.outbound WHERE idempotency_key = $1', [idempotencyKey]);
    const inserted = done.rowCount
      ? { rowCount: 0 }
      : await client.query(`INSERT INTO ${source} SELECT * FROM jsonb_populate_record(NULL::${source}, $1::jsonb) ON CONFLICT DO NOTHING`, [
          JSON.stringify(row),
        ]);
    if (inserted.rowCount) {
      const xid = (await client.query<{ xid: string }>(CURRENT_XID)).rows[0]!.xid;
      await client.query(RECORD_OUTBOUND, [
        e.entity,
        e.keyText,
        xid,
        g.flow,
        g.destinationSystem,
        null,
        null,
        JSON.stringify(values),
        Object.keys(values),
        'insert',
        '{}',
        idempotencyKey,
      ]);
      await client.query(
        `INSERT INTO trustsync.row_state (target, key, known_xid, known_values) VALUES ($1, $2, $3, $4)
         ON CONFLICT (target, key) DO UPDATE SET known_xid = EXCLUDED.known_xid, known_values = EXCLUDED.known_values, local_edits = '{}'::jsonb, changed_at = now()`,
        [e.entity, e.keyText, xid, JSON.stringify(values)],
      );
      await recordHistory(client, g.flow, [
        {
          ...eventRow(
            e.entity,
            e,
            'applied',
            `restored: ${g.sourceSystem}'s delete lost to a concurrent change in ${g.destinationSystem} (${g.policy.entity} default: ${g.policy.default.strategy}); the record is back as ${g.destinationSystem} holds it`,
          ),
          op: 'c',
          txId: xid,
          newValues: values,
        },
      ]);
    }
  });
}
