import type pg from 'pg';
import type { Admin } from 'kafkajs';
import pino from 'pino';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import { runWorkload } from '../../src/demo/workload.js';
import { validateFlow } from '../../src/flow/config.js';
import type { FlowRunner } from '../../src/flow/run-flow.js';
import { sampleGroupLag } from '../../src/observe/lag.js';
import { reconcileFlow } from '../../src/reconcile/reconcile.js';
import { waitForConvergence } from '../../src/demo/row-compare.js';
import { ConnectClient } from '../../src/stack/connectors.js';
import { endpoints, kafkaClient, pgClient, readRecords, type Variant } from './capture.js';
import { SyncFixture } from './fixture.js';
import { flowConfig, flowDocument, startFlow, type FlowSpec } from './flow.js';
import { topicOffsets } from '../../src/kafka/topics.js';

const TABLES = ['customers', 'orders'];

/**
 * One fault scenario's own world: the demo shop in a schema of its own, captured by its own
 * connector (slot, topics) and applied by its own flow (group, destination schema). What every
 * scenario asserts afterwards is here too: the destination equals the source row by row, no change
 * was applied over a newer one, and every skip, retry and dead letter counted is also on record.
 */
export class FaultScenario {
  readonly f: SyncFixture;
  readonly pairs: [string, string][];
  /** Every runner the scenario started: counters live per process. */
  private readonly runners: FlowRunner[] = [];
  private seed = 7000;
  private admin?: Admin;

  constructor(
    prefix: string,
    private readonly variant: Variant = 'json',
  ) {
    this.f = new SyncFixture(prefix);
    this.pairs = this.f.pairs(TABLES);
  }

  get source(): pg.Client {
    return this.f.source;
  }
  get dest(): pg.Client {
    return this.f.dest;
  }
  get schema(): string {
    return this.f.schema;
  }
  get destSchema(): string {
    return this.f.destSchema;
  }

  /** The shop with some history, captured, applied and caught up. */
  async open(options: { rows?: number } = {}): Promise<this> {
    await this.openUncaptured(options.rows);
    await this.startCapture();
    await this.startFlow();
    await this.converge();
    return this;
  }

  /** The shop with some history, not captured yet. */
  async openUncaptured(rows = 80): Promise<this> {
    await this.f.open({ demoTables: true });
    await this.logDestinationWrites();
    this.quietOnLoss();
    await runWorkload(this.f.source, this.f.schema, rows, 41);
    return this;
  }

  /** Creates the scenario's connector: Debezium snapshots the tables, then streams. */
  async startCapture(): Promise<void> {
    await this.f.captureTables(TABLES, this.variant).start();
  }

  /** Many customers at once, from id `from` on, in one statement. */
  async insertCustomers(from: number, count: number): Promise<void> {
    await this.f.source.query(
      `INSERT INTO ${this.f.schema}.customers (id, email, name) SELECT g, 'bulk' || g || '@example.com', 'Bulk ' || g FROM generate_series($1::bigint, $2::bigint) g`,
      [from, from + count - 1],
    );
  }

  /** Records in the scenario's topics, all partitions together (0 before Debezium made them). */
  async capturedRecords(): Promise<number> {
    if (!this.admin) {
      this.admin = kafkaClient().admin();
      await this.admin.connect();
    }
    // Only topics that exist: asked for a missing one, kafkajs retries for seconds before it says so.
    const existing = new Set(await this.admin.listTopics());
    let n = 0;
    for (const t of TABLES.map((table) => this.f.capture!.topic(table)).filter((topic) => existing.has(topic))) {
      // A topic Debezium is still creating may not answer yet: nothing to count.
      for (const o of await topicOffsets(this.admin, t).catch(() => [])) n += Number(o.high) - Number(o.low);
    }
    return n;
  }

  /** Waits until Debezium has stopped adding records (three quiet seconds). */
  async captureSettled(): Promise<number> {
    let last = -1;
    for (let quiet = 0; quiet < 3;) {
      const n = await this.capturedRecords();
      quiet = n === last ? quiet + 1 : 0;
      last = n;
      await new Promise((r) => setTimeout(r, 1000));
    }
    return last;
  }

  /** The scenario's own connections die with PostgreSQL: that is the fault, not an error of the test. */
  private quietOnLoss(): void {
    for (const c of [this.f.source, this.f.dest]) c.on('error', () => undefined);
  }

  /** New connections for the scenario after PostgreSQL came back. */
  async reconnect(): Promise<void> {
    await Promise.all([this.f.source.end(), this.f.dest.end()].map((p) => p.catch(() => undefined)));
    this.f.source = await pgClient('trustsync_source');
    this.f.dest = await pgClient('trustsync_dest');
    this.quietOnLoss();
  }

  /** The scenario's flow: its topics into the destination schema, under its own group. */
  private flowSpec(): FlowSpec {
    return { name: this.f.schema, topics: this.f.flowTables(TABLES), decoding: this.variant };
  }

  async startFlow(): Promise<FlowRunner> {
    const runner = await startFlow(flowConfig(this.flowSpec()));
    this.f.runner = runner;
    this.runners.push(runner);
    return runner;
  }

  async stopFlow(): Promise<void> {
    await this.f.runner?.stop();
    this.f.runner = undefined;
  }

  /** `trustsync reconcile` of the scenario's flow, as the CLI runs it (64 buckets, 3 s settle). */
  reconcile(repair: boolean) {
    // reconcile reads the source database the flow file names.
    const doc = flowDocument({ ...this.flowSpec(), sourceDatabase: endpoints.postgresUrl('trustsync_source') });
    return reconcileFlow(validateFlow(doc, `${this.f.schema}.yaml`), {
      buckets: 64,
      settleMs: 3000,
      repair,
      progress: () => undefined,
      log: pino({ level: 'silent' }),
    });
  }

  /** The scenario's connector in a file of its own, for the `trustsync connectors` commands. */
  connectorFile(): string {
    const file = join(mkdtempSync(join(tmpdir(), 'trustsync-connector-')), 'source.json');
    writeFileSync(file, JSON.stringify(this.f.capture!.connector));
    return file;
  }

  /** Waits until the flow's group has committed every record of the scenario's topics. */
  async caughtUp(timeoutMs = 120_000): Promise<void> {
    const admin = kafkaClient().admin();
    await admin.connect();
    try {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const lag = await sampleGroupLag(admin, `trustsync-${this.f.schema}`);
        if (lag.partitions.length > 0 && lag.partitions.every((p) => p.lag === 0n)) return;
        if (Date.now() > deadline)
          throw new Error(
            `the flow did not catch up within ${timeoutMs / 1000}s: ${lag.partitions.map((p) => `${p.topic}/${p.partition} lag ${p.lag}`).join(', ')}`,
          );
        await new Promise((r) => setTimeout(r, 500));
      }
    } finally {
      await admin.disconnect();
    }
  }

  /** Keeps changing the source (inserts, updates, deletes) until the returned function is called. */
  async writeInBackground(): Promise<() => Promise<void>> {
    const connectWriter = async () => {
      const c = await pgClient('trustsync_source');
      c.on('error', () => undefined);
      return c;
    };
    let writer = await connectWriter();
    let writing = true;
    const done = (async () => {
      while (writing) {
        try {
          await runWorkload(writer, this.f.schema, 15, this.seed++);
        } catch {
          // The source itself may be what is down: reconnect and go on once it is back.
          await writer.end().catch(() => undefined);
          await new Promise((r) => setTimeout(r, 500));
          writer = await connectWriter().catch(() => writer);
        }
      }
    })();
    return async () => {
      writing = false;
      await done;
      await writer.end().catch(() => undefined);
    };
  }

  /** Waits for the destination to equal the source; if it does not, says where the changes stopped. */
  async converge(timeoutMs = 180_000): Promise<void> {
    try {
      await waitForConvergence(this.f.source, this.f.dest, this.pairs, timeoutMs);
    } catch (err) {
      throw new Error(`${(err as Error).message.slice(0, 400)}\n${await this.diagnose()}`);
    }
  }

  /** The flow's fate, the connector's state, and each partition's end offset against the group's commit. */
  private async diagnose(): Promise<string> {
    const runner = this.f.runner;
    const fate = runner
      ? await Promise.race([
          runner.done.then(
            () => 'stopped',
            (e: Error) => `failed: ${e.message}`,
          ),
          new Promise<string>((r) => setTimeout(() => r('running'), 100)),
        ])
      : 'not started';
    const connector = await new ConnectClient(endpoints.connectUrl).status(this.f.capture!.connector.name).catch((e: Error) => e.message);
    const admin = kafkaClient().admin();
    const partitions: string[] = [];
    try {
      await admin.connect();
      for (const t of TABLES) {
        const topic = this.f.capture!.topic(t);
        const ends = await topicOffsets(admin, topic);
        const [committed] = await admin.fetchOffsets({ groupId: `trustsync-${this.f.schema}`, topics: [topic] });
        for (const e of ends)
          partitions.push(`${t}/${e.partition}: end ${e.high}, committed ${committed?.partitions.find((p) => p.partition === e.partition)?.offset ?? '?'}`);
      }
    } catch (e) {
      partitions.push(`offsets unreadable: ${(e as Error).message}`);
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
    return `flow: ${fate}\nconnector: ${JSON.stringify(connector)}\n${partitions.join('\n')}`;
  }

  /** Applied changes of a key that came after a newer one of the same key had been applied. */
  async appliedOutOfOrder(): Promise<number> {
    const { rows } = await this.f.dest.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM trustsync.history h WHERE h.target LIKE $1 AND h.decision = 'applied'
          AND EXISTS (SELECT 1 FROM trustsync.history e WHERE e.target = h.target AND e.key = h.key AND e.decision = 'applied' AND e.id < h.id AND e.position > h.position)`,
      [`${this.f.destSchema}.%`],
    );
    return rows[0]!.n;
  }

  /** What the counters say, summed over every runner of the scenario, and what the history says. */
  async accounts(): Promise<{ counted: Record<string, number>; recorded: Record<string, number> }> {
    const sum = async (read: (r: FlowRunner) => Promise<number>) => (await Promise.all(this.runners.map(read))).reduce((a, b) => a + b, 0);
    const counted = {
      superseded: await sum((r) => r.metrics.total('skipped', 'superseded')),
      duplicate: await sum((r) => r.metrics.total('skipped', 'duplicate')),
      stale: await sum((r) => r.metrics.total('skipped', 'stale')),
      retried: await sum(async (r) => (await r.metrics.retries.get()).values.reduce((n, v) => n + v.value, 0)),
      deadLettered: await sum((r) => r.metrics.total('dead_lettered')),
    };
    const { rows } = await this.f.dest.query<{ decision: string; n: number }>(
      `SELECT decision, count(*)::int AS n FROM trustsync.history WHERE target LIKE $1 GROUP BY decision`,
      [`${this.f.destSchema}.%`],
    );
    const n = (decision: string) => rows.find((r) => r.decision === decision)?.n ?? 0;
    return {
      counted,
      recorded: {
        superseded: n('superseded'),
        duplicate: n('skipped-duplicate'),
        stale: n('skipped-stale'),
        retried: n('retried'),
        deadLettered: n('dead-lettered'),
      },
    };
  }

  /**
   * An account of every write the destination's customers took, kept by the destination itself (a
   * trigger), not by trustsync: each row's write with its `updated_at` before and after. The source
   * moves `updated_at` forward with every change and never reuses an id, so a correct apply never
   * moves it back and never inserts an id again after deleting it.
   */
  private async logDestinationWrites(): Promise<void> {
    const d = this.f.destSchema;
    await this.f.dest.query(`
      CREATE TABLE ${d}.customer_writes (
        seq bigserial PRIMARY KEY, op text NOT NULL, id bigint NOT NULL, old_updated_at timestamptz, new_updated_at timestamptz, unchanged boolean NOT NULL,
        tx bigint NOT NULL DEFAULT txid_current(), at timestamptz NOT NULL DEFAULT clock_timestamp());
      CREATE FUNCTION ${d}.log_customer_write() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        INSERT INTO ${d}.customer_writes (op, id, old_updated_at, new_updated_at, unchanged)
        VALUES (TG_OP, coalesce(NEW.id, OLD.id), CASE WHEN TG_OP = 'INSERT' THEN NULL ELSE OLD.updated_at END, CASE WHEN TG_OP = 'DELETE' THEN NULL ELSE NEW.updated_at END,
                TG_OP = 'UPDATE' AND OLD IS NOT DISTINCT FROM NEW);
        RETURN NULL;
      END $$;
      CREATE TRIGGER customer_writes AFTER INSERT OR UPDATE OR DELETE ON ${d}.customers FOR EACH ROW EXECUTE FUNCTION ${d}.log_customer_write();`);
  }

  /** Writes in the destination's own account that took a row back in time, or brought a deleted one back. */
  async regressedWrites(): Promise<string[]> {
    const d = this.f.destSchema;
    const { rows } = await this.f.dest.query<{ what: string }>(
      `SELECT format('%s of customer %s: updated_at %s -> %s', op, id, old_updated_at, new_updated_at) AS what
         FROM ${d}.customer_writes WHERE op = 'UPDATE' AND new_updated_at < old_updated_at
       UNION ALL
       SELECT format('customer %s inserted again after its delete', w.id)
         FROM ${d}.customer_writes w WHERE w.op = 'INSERT' AND EXISTS (SELECT 1 FROM ${d}.customer_writes e WHERE e.id = w.id AND e.op = 'DELETE' AND e.seq < w.seq)`,
    );
    return rows.map((r) => r.what);
  }

  /**
   * Updates that left a row exactly as it was. Every change the workload makes changes the row, so
   * such a write is a change applied twice (say, one Debezium sent again). Each is told with the
   * other writes of its transaction and the key's history, to show how it came about.
   */
  async unchangedWrites(): Promise<string[]> {
    const d = this.f.destSchema;
    const { rows } = await this.f.dest.query<{ seq: string; id: string; tx: string }>(
      `SELECT seq, id, tx FROM ${d}.customer_writes WHERE unchanged ORDER BY seq`,
    );
    const told: string[] = [];
    for (const w of rows) {
      const writes = await this.f.dest.query<{ line: string }>(
        `SELECT format('#%s %s %s at %s, updated_at %s -> %s%s', seq, op, id, at, old_updated_at, new_updated_at, CASE WHEN unchanged THEN ' (unchanged)' END) AS line
           FROM ${d}.customer_writes WHERE tx = $1 OR id = $2 ORDER BY seq`,
        [w.tx, w.id],
      );
      const history = await this.f.dest.query<{ line: string }>(
        `SELECT format('  %s %s %s/%s op %s position %s stored %s offset %s/%s at %s', id, decision, reason, field, op, position, stored_position, origin_partition, origin_offset, decided_at) AS line
           FROM trustsync.history WHERE target = $1 AND key = $2 ORDER BY id`,
        [`${d}.customers`, w.id],
      );
      told.push(
        [
          `write #${w.seq} of customer ${w.id} (transaction ${w.tx}) changed nothing:`,
          ...writes.rows.map((r) => `  ${r.line}`),
          ...history.rows.map((r) => r.line),
        ].join('\n'),
      );
    }
    return told;
  }

  /** Records Debezium sent more than once (the same key at the same source position), as a restarted capture re-sends them. */
  async resentRecords(): Promise<number> {
    let resent = 0;
    for (const t of TABLES) {
      const seen = new Set<string>();
      for (const r of await readRecords(kafkaClient(), this.f.capture!.topic(t), 0)) {
        if (!r.value) continue;
        const value = JSON.parse(r.value.toString()) as { payload?: { source: { lsn: number } }; source?: { lsn: number } };
        const at = `${r.key?.toString()}@${(value.payload ?? value).source!.lsn}`;
        if (seen.has(at)) resent++;
        else seen.add(at);
      }
    }
    return resent;
  }

  /** How many writes the destination's own account holds. */
  async destinationWrites(): Promise<number> {
    const { rows } = await this.f.dest.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${this.f.destSchema}.customer_writes`);
    return rows[0]!.n;
  }

  /** The assertions every scenario ends with. */
  async assertNothingLost(): Promise<{ counted: Record<string, number> }> {
    await this.converge();
    // The destination's own account first: it does not depend on trustsync telling the truth.
    expect(await this.destinationWrites()).toBeGreaterThan(0);
    expect(await this.regressedWrites()).toEqual([]);
    expect(await this.appliedOutOfOrder()).toBe(0);
    const { counted, recorded } = await this.accounts();
    expect(recorded).toEqual(counted);
    return { counted };
  }

  async close(): Promise<void> {
    await this.admin?.disconnect().catch(() => undefined);
    await this.f.close();
  }
}
