import type pg from 'pg';
import type { TableName } from '../../model/table.js';
import type { CanaryRecord, CaptureReadiness, ReplicationSlotState, SourceDatabase } from '../source.js';
import { CAPTURE_SETTINGS, CAPTURED_TABLES, REPLICA_IDENTITY } from './capture-sql.js';
import type { CanonicalRows } from '../sink.js';
import { INSERT_CANARY, canaryTableSql } from './canary-sql.js';
import { postgresCanonicalRows, postgresNativeRows } from './canonical-sql.js';
import { keyTextExpr, qualified, quoteIdent } from './sql.js';

/** A PostgreSQL database Debezium captures, as canaries and reconcile use it. */
export class PostgresSource implements SourceDatabase {
  readonly kind = 'postgres';
  readonly canonical: CanonicalRows;
  readonly native: CanonicalRows;
  private closed?: Promise<void>;

  constructor(readonly pool: pg.Pool) {
    pool.on('connect', (client) => client.on('error', () => undefined));
    this.canonical = postgresCanonicalRows(pool);
    this.native = postgresNativeRows(pool);
  }

  async rowsByKey(t: TableName, keyColumns: readonly string[], values: readonly string[], keys: readonly string[]) {
    const text = (columns: readonly string[]) => columns.map((c) => `t.${quoteIdent(c)}::text`).join(', ') || 'NULL::text';
    const { rows } = await this.pool.query<{ k: string; kv: (string | null)[]; v: (string | null)[] }>(
      `SELECT ${keyTextExpr(keyColumns)} AS k, ARRAY[${text(keyColumns)}] AS kv, ARRAY[${text(values)}] AS v
         FROM ${qualified(t)} t WHERE ${keyTextExpr(keyColumns)} = ANY($1::text[])`,
      [keys],
    );
    return new Map(rows.map((r) => [r.k, { key: r.kv, values: r.v }]));
  }

  async ensureCanaryTable(t: TableName): Promise<void> {
    await this.pool.query(canaryTableSql(t));
  }

  async writeCanary(t: TableName, record: CanaryRecord): Promise<number> {
    const { rows } = await this.pool.query<{ sent_at: Date }>(INSERT_CANARY(t), [record.id, record.label, record.amount, JSON.stringify(record.tags)]);
    return rows[0]!.sent_at.getTime();
  }

  async captureReadiness(tables: readonly TableName[]): Promise<CaptureReadiness> {
    const { rows: settings } = await this.pool.query<{ wal_level: string; replication: boolean; username: string }>(CAPTURE_SETTINGS);
    const s = settings[0]!;
    const { rows } = await this.pool.query<{ schema: string; name: string; identity: string; key: string[] | null; columns: string[]; out_of_line: string[] }>(
      CAPTURED_TABLES,
      [tables.map((t) => t.schema), tables.map((t) => t.table)],
    );
    const found = new Map(rows.map((r) => [`${r.schema}.${r.name}`, r]));
    return {
      logDecoding: { ok: s.wal_level === 'logical', detail: `wal_level=${s.wal_level}` },
      replication: { ok: s.replication, detail: `user ${s.username} ${s.replication ? 'may' : 'may not'} stream changes (REPLICATION)` },
      tables: tables.map((t) => {
        const r = found.get(`${t.schema}.${t.table}`);
        return {
          table: t,
          exists: r !== undefined,
          keyColumns: r?.key ?? [],
          columns: r?.columns ?? [],
          replicaIdentity: r ? REPLICA_IDENTITY[r.identity] : undefined,
          outOfLine: r?.out_of_line ?? [],
        };
      }),
    };
  }

  async replicationSlots(): Promise<ReplicationSlotState[]> {
    const { rows } = await this.pool.query<{ slot: string; active: boolean; retained: string | null; lag: string | null }>(
      `SELECT slot_name AS slot, active,
              pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint::text AS retained,
              pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint::text AS lag
         FROM pg_replication_slots WHERE slot_type = 'logical' AND database = current_database() ORDER BY slot_name`,
    );
    return rows.map((r) => ({ slot: r.slot, active: r.active, retainedWalBytes: Number(r.retained ?? 0), flushLagBytes: Number(r.lag ?? 0) }));
  }

  close(): Promise<void> {
    this.closed ??= this.pool.end().catch(() => undefined);
    return this.closed;
  }
}
