import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import type { ChangeEvent } from '../../model/change.js';
import { RowRejected, TrustsyncError } from '../../model/errors.js';
import type { Values } from '../../policy/resolve.js';
import { classifyPgError, isRowDataPgError } from './pg-errors.js';
import { ROW_STATES } from './governed-sql.js';
import { migrate } from './migrate.js';
import { keyStates, recordHistory, type PostgresSink, type TableShape } from './postgres-sink.js';
import { targetName, type TableMapping } from '../../model/table.js';
import type { BatchAudit } from '../../model/decision.js';
import { noteRow } from '../../history/history.js';
import type { HistoryRow } from '../../model/history-row.js';
import {
  echoKey,
  type EchoRecord,
  type Governance,
  type GovernanceOptions,
  type GovernedDecision,
  type GovernedDestination,
  type ReviewItem,
} from '../governance.js';
import { findEchoes } from './echoes.js';
import { openPool } from './pool.js';
import { governedHistoryRows, jsonable } from './governed-history.js';
import { fromPgText, GovernedWriter } from './governed-writer.js';
import { restorePending } from './restore-in-source.js';

/**
 * The destination under policy: each captured change is weighed field by field against what the
 * destination holds — authority, validation, version vectors, strategies — and written with a record
 * of the write (outbound) so that its capture coming back is known for an echo. One transaction per
 * batch; each change under its own savepoint, so a row the database refuses costs only itself.
 */
export class GovernedSink implements GovernedDestination {
  /** The source system's database: echoes are looked up there, and deleted records restored. */
  private readonly sourceDb?: pg.Pool;
  private readonly flow?: string;
  private closed?: Promise<void>;

  constructor(
    readonly sink: PostgresSink,
    options: GovernanceOptions = { name: 'trustsync' },
  ) {
    this.flow = options.flow;
    if (options.sourceUrl) {
      this.sourceDb = openPool(options.sourceUrl, { name: `${options.name}:echoes`, connections: 4, onConnectionLost: options.onConnectionLost });
    }
  }

  get echoSuppression(): boolean {
    return this.sourceDb !== undefined;
  }

  async tracksCommitTimes(): Promise<boolean> {
    const { rows } = await this.sink.pool.query<{ on: string }>("SELECT current_setting('track_commit_timestamp') AS on");
    return rows[0]!.on === 'on';
  }

  async prepare(): Promise<void> {
    await migrate(this.sink.pool);
    // The table of trustsync's writes into the source: the other direction fills it, this one reads it.
    if (this.sourceDb) await migrate(this.sourceDb);
    // Restores a stopped flow decided and committed but had not carried out yet.
    if (this.flow) await this.restorePending(this.flow);
  }

  /** Restores into the source that committed decisions here asked for, carried out now. */
  private async restorePending(flow: string): Promise<void> {
    if (!this.sourceDb) return;
    try {
      await restorePending(this.sink.pool, this.sourceDb, flow);
    } catch (err) {
      throw err instanceof TrustsyncError ? err : classifyPgError(err, `restoring records in ${flow}'s source`);
    }
  }

  findEchoes(sourceTable: string, events: readonly ChangeEvent[]): Promise<Map<string, EchoRecord>> {
    return this.sourceDb ? findEchoes(this.sourceDb, sourceTable, events) : Promise.resolve(new Map());
  }

  valueFromText(text: string | null, type: string): unknown {
    return fromPgText(text, type);
  }

  close(): Promise<void> {
    this.closed ??= this.sourceDb?.end().catch(() => undefined) ?? Promise.resolve();
    return this.closed;
  }

  /** Review items of the given destination tables (schema.table). */
  async listReviews(targets: readonly string[], all = false): Promise<ReviewItem[]> {
    const { rows } = await this.sink.pool.query<ReviewItem>(
      `SELECT id, flow, entity, target, key, field, owner, proposer, kept_value AS "keptValue", proposed_value AS "proposedValue",
              proposer_tx_id AS "proposerTxId", vectors, policy, status, created_at AS "createdAt", resolution
         FROM trustsync.review WHERE target = ANY($1::text[]) ${all ? '' : "AND status = 'open'"} ORDER BY created_at, id`,
      [targets],
    );
    return rows;
  }

  /**
   * Writes a review item's chosen value into this destination through the same bookkeeping as any
   * decision (row lock, write record for echo suppression, agreed values, history) and closes the item here.
   */
  async resolveReview(m: TableMapping, g: Governance, item: ReviewItem, chosen: unknown, take: string): Promise<{ wrote: boolean; detail: string }> {
    const shape = await this.sink.ensureTable(m, []);
    return this.sink.transaction(`resolving review ${item.id} in ${targetName(m.table)}`, async (client) => {
      const result = await new GovernedWriter(client, m, shape, g).resolveReview(item, chosen, take);
      await recordHistory(client, g.flow, [
        noteRow(targetName(m.table), item.key, 'review-resolved', {
          op: item.field === '*' ? null : 'u',
          reason: `review ${item.id} (${item.field}): took ${take} ${JSON.stringify(chosen)} — ${result.detail}`,
          txId: result.xid,
          newValues: result.wrote && item.field !== '*' ? { [item.field]: chosen } : null,
        }),
      ]);
      return { wrote: result.wrote, detail: result.detail };
    });
  }

  /** Records' states (see ROW_STATES), read when reconcile finds a difference: repairFields compares them. */
  rowStates(m: TableMapping, keys: readonly string[]): Promise<Map<string, string>> {
    return keyStates(this.sink.pool, ROW_STATES, targetName(m.table), keys);
  }

  /**
   * Reconcile's repair of records' fields under policy: each written as a settled decision (write
   * record, agreed values), on record as `repaired`, one transaction for the table. Only records
   * whose state is still `seen`'s, locked first: one the flow wrote since is left to the flow, and
   * returned as moved.
   */
  async repairFields(
    m: TableMapping,
    g: Governance,
    repairs: readonly { keyText: string; values: Values }[],
    reason: string,
    seen: ReadonlyMap<string, string>,
  ): Promise<{ repaired: number; moved: Set<string> }> {
    const shape = await this.sink.ensureTable(m, []);
    const target = targetName(m.table);
    return this.sink.transaction(`repairing ${target}`, async (client) => {
      const now = await keyStates(
        client,
        ROW_STATES,
        target,
        repairs.map((r) => r.keyText),
        true,
      );
      const moved = new Set(repairs.filter((r) => now.get(r.keyText) !== seen.get(r.keyText)).map((r) => r.keyText));
      const writer = new GovernedWriter(client, m, shape, g);
      const history: HistoryRow[] = [];
      for (const r of repairs.filter((x) => !moved.has(x.keyText))) {
        const settled = await writer.settleFields(r.keyText, r.values, 'reconcile', `reconcile:${randomUUID()}`);
        if (!settled?.xid) continue;
        history.push(noteRow(target, r.keyText, 'repaired', { op: 'u', reason, txId: settled.xid, newValues: jsonable(settled.written) }));
      }
      await recordHistory(client, g.flow, history);
      return { repaired: history.length, moved };
    });
  }

  /** Review items still waiting in this destination. */
  async openReviews(targets: readonly string[]): Promise<number> {
    const { rows } = await this.sink.pool.query<{ n: string }>(
      "SELECT count(*) AS n FROM trustsync.review WHERE status = 'open' AND target = ANY($1::text[])",
      [targets],
    );
    return Number(rows[0]!.n);
  }

  /** trustsync's write records past the retention: their echoes have long been seen (or never will be). */
  async purgeOutbound(retentionMs: number): Promise<number> {
    const res = await this.sink.pool.query('DELETE FROM trustsync.outbound WHERE written_at < now() - make_interval(secs => $1)', [retentionMs / 1000]);
    return res.rowCount ?? 0;
  }

  async applyGoverned(
    m: TableMapping,
    events: readonly ChangeEvent[],
    g: Governance,
    echoes: ReadonlyMap<string, EchoRecord>,
    audit: BatchAudit,
  ): Promise<GovernedDecision[]> {
    if (events.length === 0) {
      await recordHistory(this.sink.pool, audit.flow, audit.extra);
      return [];
    }
    let shape: TableShape;
    try {
      shape = await this.sink.ensureTable(m, events);
    } catch (err) {
      throw err instanceof TrustsyncError ? err : classifyPgError(err, `preparing to write ${targetName(m.table)}`);
    }
    const decisions = await this.sink.transaction(`writing ${events.length} governed changes to ${targetName(m.table)}`, async (client) => {
      const writer = new GovernedWriter(client, m, shape, g, this.sourceDb !== undefined);
      const decisions: GovernedDecision[] = [];
      for (const e of events) {
        await client.query('SAVEPOINT trustsync_change');
        try {
          decisions.push(await writer.apply(e, e.txId === null ? undefined : echoes.get(echoKey(e.keyText, e.txId))));
          await client.query('RELEASE SAVEPOINT trustsync_change');
        } catch (err) {
          if (!isRowDataPgError(err)) throw err;
          await client.query('ROLLBACK TO SAVEPOINT trustsync_change');
          decisions.push({ decision: 'rejected', event: e, error: classifyPgError(err, `${targetName(m.table)} key ${e.keyText}`) as RowRejected });
        }
      }
      const target = targetName(m.table);
      await recordHistory(client, audit.flow, [...audit.extra, ...decisions.flatMap((d) => governedHistoryRows(target, d))], audit.batchId);
      return decisions;
    });
    // A failure here fails the batch: its retry finds every change a duplicate, commits, and comes back here.
    await this.restorePending(g.flow);
    return decisions;
  }
}
