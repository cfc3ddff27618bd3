import pg from 'pg';
import { ConnectClient, type ConnectorConfig } from './connectors.js';
import { StackError } from '../model/errors.js';
import { sleep } from './processes.js';

export const POSTGRES_SOURCE = 'io.debezium.connector.postgresql.PostgresConnector';
const isPostgresSource = (c: ConnectorConfig) => c.config['connector.class'] === POSTGRES_SOURCE;

/**
 * Why a Debezium PostgreSQL source cannot resume where it stopped: its replication slot is gone
 * (dropped), lost (invalidated once it held more WAL than max_slot_wal_keep_size allows), or keeps WAL
 * only from after the stored position. Either way the changes in between are not on the server any more.
 */
export type SlotProblem = 'missing' | 'lost' | 'ahead';

export interface CaptureGap {
  slot: string;
  problem: SlotProblem;
  /** The commit LSN of the connector's stored offset: it would resume after this. */
  resumeLsn: string;
  /** The oldest WAL position the slot still holds (an 'ahead' slot). */
  slotRestartLsn?: string;
}

export interface CaptureCheck {
  connector: string;
  /** Connect's state of the connector ('ABSENT' when Connect does not know it) and of each task. */
  state: string;
  tasks: string[];
  /** Set when changes were lost between the stored offset and what the slot still holds. */
  gap?: CaptureGap;
}

/** PostgreSQL's text form of an LSN (hi/lo in hex), as pg_replication_slots and Debezium's logs show it. */
export function formatLsn(lsn: bigint): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`;
}

export function describeGap(gap: CaptureGap): string {
  const slot = {
    missing: `replication slot ${gap.slot} no longer exists`,
    lost: `replication slot ${gap.slot} was invalidated (wal_status lost)`,
    ahead: `replication slot ${gap.slot} keeps WAL only from ${gap.slotRestartLsn}`,
  }[gap.problem];
  return `${slot}; the changes committed after ${gap.resumeLsn} were never captured`;
}

/** The database a PostgreSQL source connector reads, with its own credentials. */
function sourceDatabase(c: ConnectorConfig): pg.ClientConfig {
  const v = (k: string) => c.config[`database.${k}`];
  return { host: v('hostname'), port: Number(v('port') ?? 5432), user: v('user'), password: v('password'), database: v('dbname') };
}

const slotName = (c: ConnectorConfig) => c.config['slot.name'] ?? 'debezium';

/** How long a Debezium task waits after a retriable error before it starts over (its default: 10 s). */
const restartBackoffMs = (c: ConnectorConfig) => Number(c.config['retriable.restart.connector.wait.ms'] ?? 10_000) || 10_000;

async function withSource<T>(c: ConnectorConfig, use: (db: pg.Client) => Promise<T>): Promise<T> {
  const db = new pg.Client({ ...sourceDatabase(c), application_name: 'trustsync:connectors' });
  try {
    await db.connect();
  } catch (err) {
    throw new StackError(
      `cannot reach the source database of connector ${c.name} (${(err as Error).message}).`,
      "check the connector file's database.* settings and that PostgreSQL is up.",
    );
  }
  try {
    return await use(db);
  } finally {
    await db.end();
  }
}

/**
 * Compares where the connector will resume (its stored offset) with what its slot still holds. The
 * same comparison Debezium makes when its task starts, made before it starts: once a new slot
 * streams, the evidence of the gap is gone.
 */
export async function checkCapture(connect: ConnectClient, c: ConnectorConfig): Promise<CaptureCheck> {
  const status = await connect.status(c.name);
  if (!status) return { connector: c.name, state: 'ABSENT', tasks: [] };
  const check: CaptureCheck = { connector: c.name, state: status.connector.state, tasks: status.tasks.map((t) => t.state) };
  if (!isPostgresSource(c)) return check;
  const stored = (await connect.offsets(c.name)).find((o) => o.lsn_commit !== undefined || o.lsn !== undefined);
  // No offset yet: the connector has not streamed, so it will snapshot first and nothing can be missing.
  if (!stored) return check;
  // JSON numbers: exact up to 2^53 bytes of WAL, far beyond any real server.
  const at = formatLsn(BigInt(Number(stored.lsn_commit ?? stored.lsn)));
  const slot = slotName(c);
  const { rows } = await withSource(c, (db) =>
    db.query<{ restart_lsn: string | null; wal_status: string | null; ahead: boolean }>(
      `SELECT restart_lsn::text, wal_status, restart_lsn > $2::pg_lsn AS ahead FROM pg_replication_slots WHERE slot_name = $1`,
      [slot, at],
    ),
  );
  const found = rows[0];
  if (!found) check.gap = { slot, problem: 'missing', resumeLsn: at };
  else if (found.wal_status === 'lost' || found.restart_lsn === null) check.gap = { slot, problem: 'lost', resumeLsn: at };
  else if (found.ahead) check.gap = { slot, problem: 'ahead', resumeLsn: at, slotRestartLsn: found.restart_lsn };
  return check;
}

/**
 * Captures a source again from a fresh snapshot: the connector removed with its stored offset, an
 * unusable slot dropped, and the connector created anew (Debezium creates a new slot and snapshots
 * from the moment it does). Created anew rather than resumed: a task stuck retrying against the lost
 * slot may outlive its stop, and a resumed connector has been seen to wait for it with no tasks.
 * The snapshot fills in the rows the destination never had; it cannot carry updates the destination
 * missed (a snapshot read never overrides a streamed change) nor deletes: `trustsync reconcile
 * --repair` finds and mends those.
 *
 * The old offsets must stay gone: a task that met the lost slot waits out Debezium's restart backoff
 * before it sees the stop, then commits the old position, so the removal watches them for that long.
 */
export async function resnapshot(connect: ConnectClient, c: ConnectorConfig, waitMs?: number): Promise<void> {
  if (!isPostgresSource(c))
    throw new StackError(`connector ${c.name} is not a Debezium PostgreSQL source.`, `resnapshot handles ${POSTGRES_SOURCE} connectors only.`);
  if (!(await connect.status(c.name))) throw new StackError(`Kafka Connect has no connector ${c.name}.`, 'create it with `trustsync connectors apply`.');
  await connect.remove(c.name, { offsetsQuietMs: restartBackoffMs(c) + 2_000 });
  if (!(await withSource(c, (db) => dropSlotOnceReleased(db, slotName(c))))) {
    throw new StackError(
      `replication slot ${slotName(c)} is still in use after connector ${c.name} was removed.`,
      'find who holds it in pg_stat_replication, stop that client, then run resnapshot again.',
    );
  }
  await connect.apply(c);
  await waitSourceRunning(connect, c, waitMs);
}

/**
 * Waits for a connector and its tasks to run. A Debezium PostgreSQL source that creates its slot
 * waits until every transaction that holds a transaction id anywhere in the cluster has ended (the
 * slot's consistent point); when that is what it still waits for, the error names them.
 */
export async function waitSourceRunning(connect: ConnectClient, c: ConnectorConfig, waitMs?: number): Promise<void> {
  try {
    await connect.waitRunning(c.name, waitMs);
  } catch (err) {
    if (!(err instanceof StackError) || !isPostgresSource(c)) throw err;
    const open = await withSource(c, (db) => transactionsHoldingSlot(db, slotName(c))).catch(() => []);
    if (open.length === 0) throw err;
    throw new StackError(
      `${err.message} Its replication slot ${slotName(c)} is still being created: PostgreSQL waits for every transaction open when that began to end; open now: ${open.join('; ')}.`,
      'end those transactions (commit, roll back, or pg_terminate_backend); the connector goes on by itself once they have.',
    );
  }
}

/** While a walsender is creating `slot`, the transactions with a transaction id (in any database) it waits for, oldest first. */
async function transactionsHoldingSlot(db: pg.Client, slot: string): Promise<string[]> {
  const { rows } = await db.query<{ pid: number; datname: string | null; application_name: string; state: string | null; seconds: number }>(
    `SELECT a.pid, a.datname, a.application_name, a.state, extract(epoch FROM now() - a.xact_start)::int AS seconds
       FROM pg_stat_activity a
      WHERE a.backend_xid IS NOT NULL AND a.pid <> pg_backend_pid()
        AND EXISTS (SELECT 1 FROM pg_stat_activity w WHERE w.backend_type = 'walsender' AND w.query LIKE 'CREATE_REPLICATION_SLOT "' || $1 || '"%')
      ORDER BY a.xact_start LIMIT 5`,
    [slot],
  );
  return rows.map((r) => `pid ${r.pid} (${r.application_name || 'no application name'}, database ${r.datname ?? '?'}, ${r.state ?? '?'}, open ${r.seconds} s)`);
}

/** Drops a replication slot as soon as its (stopping) client lets go of it: true once there is none. */
async function dropSlotOnceReleased(db: pg.Client, slot: string): Promise<boolean> {
  for (let i = 0; i < 150; i++) {
    const { rows } = await db.query<{ active: boolean }>('SELECT active FROM pg_replication_slots WHERE slot_name = $1', [slot]);
    if (rows.length === 0) return true;
    if (!rows[0]!.active) {
      await db.query('SELECT pg_drop_replication_slot($1)', [slot]);
      return true;
    }
    await sleep(200);
  }
  return false;
}

/**
 * Removes a Debezium PostgreSQL source completely: the connector and its offsets, then its
 * replication slot (an abandoned slot makes the server keep WAL forever) and its publication.
 */
export async function removePostgresSource(connect: ConnectClient, c: ConnectorConfig): Promise<void> {
  await connect.remove(c.name);
  await withSource(c, async (db) => {
    await dropSlotOnceReleased(db, slotName(c));
    const publication = c.config['publication.name'];
    if (publication) await db.query(`DROP PUBLICATION IF EXISTS "${publication.replaceAll('"', '""')}"`);
  });
}
