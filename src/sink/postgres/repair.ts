import { noteRow } from '../../history/history.js';
import type { HistoryRow } from '../../model/history-row.js';
import { targetName, type TableMapping } from '../../model/table.js';
import type { CopyRepair, RepairableSink } from '../sink.js';
import { keyStates, readTableShape, recordHistory, type PostgresSink } from './postgres-sink.js';
import { keyTextExpr, LEDGER_STATES, qualified, quoteIdent, upsertStatement } from './sql.js';

/**
 * Reconcile's repair without policy, in PostgreSQL: the source's rows copied in PostgreSQL's own text,
 * one transaction per table, each repair on record in the history.
 */
export function postgresRepair(sink: PostgresSink): RepairableSink {
  return {
    ledgerStates: (m: TableMapping, keys: readonly string[]) => keyStates(sink.pool, LEDGER_STATES, targetName(m.table), keys),
    repairCopy: (r) => repairCopy(sink, r),
  };
}

async function repairCopy(sink: PostgresSink, r: CopyRepair): Promise<Set<string>> {
  const { m, keyColumns, pairs } = r;
  const target = targetName(m.table);
  const keyExpr = keyTextExpr(keyColumns);
  return sink.transaction(`repairing ${target}`, async (client) => {
    // Locked: the flow's next write of these keys waits for this transaction, so the source read
    // below is at least as new as anything the flow applied to them.
    const ledgerNow = await keyStates(client, LEDGER_STATES, target, [...new Set(r.candidates.map((d) => d.key))], true);
    const moved = new Set(r.candidates.filter((d) => ledgerNow.get(d.key) !== r.seen.get(d.key)).map((d) => d.key));
    const diffs = r.candidates.filter((d) => !moved.has(d.key));
    const typeOf = (await readTableShape(client, m.table))!.columns;
    const keys = [...new Set(diffs.filter((d) => d.action === 'update-destination').map((d) => d.key))];
    const byKey = await r.readSource(keys);
    const history: HistoryRow[] = [];
    const row = (key: string, op: string, reason: string, values: unknown): HistoryRow =>
      noteRow(target, key, 'repaired', { entity: m.sourceTable!, op, reason, newValues: values });
    for (const key of keys) {
      const source = byKey.get(key);
      if (!source) continue;
      // Only the differing fields the policy lets the source write (all of them for a missing row).
      const allowed = new Set(diffs.filter((d) => d.key === key && d.action === 'update-destination').map((d) => d.field));
      const cols = pairs.map((p, i) => ({ p, i })).filter(({ p }) => allowed.has(undefined) || allowed.has(p.dst));
      if (allowed.has(undefined)) {
        const columns = [...keyColumns, ...cols.map(({ p }) => p.dst)].map((name) => ({ name, type: typeOf.get(name)! }));
        // A key the ledger never held has no lock to take: should the flow insert it first, its row stays.
        await client.query(
          upsertStatement(m.table, columns, [...keyColumns], true),
          [...source.key, ...cols.map(({ i }) => source.values[i] ?? null)].map((v) => [v]),
        );
      } else {
        // Just the differing fields: an INSERT … ON CONFLICT would check NOT NULL columns it does not set.
        const sets = cols.map(({ p }, j) => `${quoteIdent(p.dst)} = $${j + 2}::text::${typeOf.get(p.dst)!}`);
        await client.query(`UPDATE ${qualified(m.table)} AS t SET ${sets.join(', ')} WHERE ${keyExpr} = $1`, [
          key,
          ...cols.map(({ i }) => source.values[i] ?? null),
        ]);
      }
      const values = Object.fromEntries(cols.map(({ p, i }) => [p.dst, source.values[i] ?? null]));
      history.push(row(key, allowed.has(undefined) ? 'c' : 'u', 'reconcile: the destination differed from the source', values));
    }
    for (const d of diffs.filter((x) => x.action === 'delete-destination')) {
      await client.query(`DELETE FROM ${qualified(m.table)} AS t WHERE ${keyExpr} = $1`, [d.key]);
      history.push(row(d.key, 'd', 'reconcile: the source does not have this row', null));
    }
    await recordHistory(client, r.flow, history);
    return moved;
  });
}
