import { join } from 'node:path';
import pg from 'pg';
import pino from 'pino';
import { Kafka, logLevel } from 'kafkajs';
import { PACKAGE_DIR, stackEndpoints, type StackSettings } from '../stack/settings.js';
import { stackUp } from '../stack/stack.js';
import { ConnectClient, readConnectorFile, stackConnectorVars, type ConnectorConfig } from '../stack/connectors.js';
import { removePostgresSource } from '../stack/postgres-source.js';
import { FlowRunner } from '../flow/run-flow.js';
import type { FlowConfig } from '../flow/config.js';
import { listReviews } from '../flow/review.js';
import type { ReviewItem } from '../sink/governance.js';
import { loadSyncFlows, readCustomers, syncCustomersSql, waitForSyncQuiet, type Customer } from './sync.js';
import { StackError } from '../model/errors.js';

export interface SyncDemoResult {
  app: Customer[];
  crm: Customer[];
  /** Field decisions other than plain applies, as the history tells them. */
  decisions: { system: string; key: string; reason: string }[];
  reviews: ReviewItem[];
  edits: number;
  writes: { intoApp: number; intoCrm: number; echoesSuppressed: number };
  /** Keys whose two sides differ beyond what the policy rejected. */
  diverged: number[];
  flowFiles: string[];
}

const APP_DB = 'trustsync_source';
const CRM_DB = 'trustsync_dest';

function sideConnector(s: StackSettings, side: 'app' | 'crm'): ConnectorConfig {
  return readConnectorFile(join(PACKAGE_DIR, 'connectors', 'postgres-source-json.json'), {
    ...stackConnectorVars(s),
    SERVER: side,
    SCHEMAS: side,
    TABLES: `${side}.customers`,
    SOURCE_DB: side === 'app' ? APP_DB : CRM_DB,
    PARTITIONS: '3',
  });
}

/** Starts the sync's world anew: schemas, connectors and slots, topics, consumer groups, trustsync's state of it. */
async function resetSync(s: StackSettings, kafka: Kafka, flows: FlowConfig[], app: pg.Client, crm: pg.Client, log: (line: string) => void): Promise<void> {
  const e = stackEndpoints(s);
  const connect = new ConnectClient(e.connectUrl);
  log('resetting the sync (schemas app and crm, their connectors, slots, topics and trustsync state) …');
  for (const side of ['app', 'crm'] as const) await removePostgresSource(connect, sideConnector(s, side));
  const admin = kafka.admin();
  await admin.connect();
  try {
    await admin.deleteGroups(flows.map((f) => f.group)).catch(() => undefined);
    const existing = new Set(await admin.listTopics());
    const topics = [...flows.map((f) => f.tables[0]!.topic), ...flows.map((f) => f.dlqTopic)].filter((t) => existing.has(t));
    if (topics.length) await admin.deleteTopics({ topics });
  } finally {
    await admin.disconnect();
  }
  for (const [db, schema] of [
    [app, 'app'],
    [crm, 'crm'],
  ] as const) {
    await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await db.query(syncCustomersSql(schema));
    for (const table of ['row_state', 'outbound', 'review', 'history']) {
      await db.query(`DELETE FROM trustsync.${table} WHERE target = $1`, [`${schema}.customers`]).catch(() => undefined);
    }
  }
}

/**
 * Two databases kept in sync both ways under the customer policy: the app's and the CRM's customers
 * tables, each captured by its own Debezium connector, each the destination of the other's flow.
 * The sync is interrupted while both sides edit the same customers; when it resumes, every conflict
 * is settled by the policy — one waits in the review queue — and nothing echoes back and forth.
 */
export async function runSyncDemo(s: StackSettings, log: (line: string) => void): Promise<SyncDemoResult> {
  const status = await stackUp(s, log);
  if (!status.healthy) throw new StackError('the local stack is not healthy.', 'see `trustsync stack status`, then `trustsync stack up`.');
  const e = stackEndpoints(s);
  const kafka = new Kafka({ clientId: 'trustsync-sync-demo', brokers: e.kafkaBrokers, logLevel: logLevel.NOTHING });
  const flows = loadSyncFlows().map((f) => ({ ...f, metrics: undefined }));
  const app = new pg.Client(e.postgresUrl(APP_DB));
  const crm = new pg.Client(e.postgresUrl(CRM_DB));
  await app.connect();
  await crm.connect();
  const admin = kafka.admin();
  let runners: FlowRunner[] = [];
  let edits = 0;
  const edit = async (db: pg.Client, sql: string) => {
    edits += (await db.query(sql)).rowCount ?? 0;
  };
  const start = async () => {
    runners = [];
    for (const f of flows) {
      const r = new FlowRunner(f, pino({ level: 'warn' }));
      await r.start();
      runners.push(r);
    }
  };
  const stop = async () => {
    for (const r of runners) await r.stop();
    runners = [];
  };
  const quiet = () => waitForSyncQuiet(admin, flows, async () => JSON.stringify([await readCustomers(app, 'app'), await readCustomers(crm, 'crm')]));
  try {
    await resetSync(s, kafka, flows, app, crm, log);
    const people = ['Ada Lovelace', 'Grace Hopper', 'Alan Turing', 'Edsger Dijkstra', 'Barbara Liskov', 'Donald Knuth', 'Frances Allen', 'Ken Thompson'];
    for (const [i, name] of people.entries()) {
      await edit(
        app,
        `INSERT INTO app.customers (id, name, email, phones) VALUES (${i + 1}, '${name}', '${name.split(' ')[0]!.toLowerCase()}@example.com', '["+4420700${i}"]')`,
      );
    }
    log(`the app has ${people.length} customers; the CRM's customers table is empty`);
    for (const side of ['app', 'crm'] as const) {
      const c = sideConnector(s, side);
      log(`applying connector ${c.name} (Debezium PostgreSQL source on ${side === 'app' ? APP_DB : CRM_DB})`);
      await new ConnectClient(e.connectUrl).apply(c);
      await new ConnectClient(e.connectUrl).waitRunning(c.name);
    }
    await admin.connect();
    log(`starting flows ${flows.map((f) => f.flow).join(' and ')} (policy: flows/policies/customers.yaml)`);
    await start();
    await quiet();
    log(`the CRM now holds ${(await readCustomers(crm, 'crm')).length} customers; the CRM's capture of those writes was recognised and not sent back`);

    log('the sync is interrupted; meanwhile people edit the same customers on both sides …');
    await stop();
    await edit(app, `UPDATE app.customers SET name = 'Ada King, Countess of Lovelace' WHERE id = 1`);
    await edit(crm, `UPDATE crm.customers SET lifecycle_stage = 'customer' WHERE id = 1`);
    await edit(app, `UPDATE app.customers SET status = 'paused' WHERE id = 2`);
    await edit(crm, `UPDATE crm.customers SET status = 'closed' WHERE id = 2`);
    await edit(app, `UPDATE app.customers SET phones = phones || '["+447700900123"]' WHERE id = 3`);
    await edit(crm, `UPDATE crm.customers SET phones = phones || '["+15550100"]' WHERE id = 3`);
    await edit(app, `UPDATE app.customers SET name = 'E. W. Dijkstra' WHERE id = 4`);
    await new Promise((r) => setTimeout(r, 50));
    await edit(crm, `UPDATE crm.customers SET name = 'Edsger W. Dijkstra' WHERE id = 4`);
    await edit(crm, `UPDATE crm.customers SET email = 'barbara@crm.example.com' WHERE id = 5`);
    await edit(app, `UPDATE app.customers SET lifecycle_stage = 'churned' WHERE id = 6`);
    await edit(crm, `DELETE FROM crm.customers WHERE id = 8`);
    log('the sync resumes …');
    await start();
    await quiet();

    const decisions: SyncDemoResult['decisions'] = [];
    for (const [db, system] of [
      [crm, 'crm'],
      [app, 'app'],
    ] as const) {
      const { rows } = await db.query<{ key: string; reason: string }>(
        `SELECT key, reason FROM trustsync.history WHERE target = $1 AND decision IN ('applied', 'unchanged') AND reason ~ '(rejected|conflict|review)' ORDER BY id`,
        [`${system}.customers`],
      );
      for (const r of rows) decisions.push({ system, key: r.key, reason: r.reason.replace(/^vectors \w+; /, '') });
    }
    const count = async (db: pg.Client, sql: string, target: string) => Number((await db.query(sql, [target])).rows[0].n);
    const outbound = 'SELECT count(*) AS n FROM trustsync.outbound WHERE target = $1';
    const echoes = "SELECT count(*) AS n FROM trustsync.history WHERE target = $1 AND decision = 'echo-suppressed'";
    const writes = {
      intoApp: await count(app, outbound, 'app.customers'),
      intoCrm: await count(crm, outbound, 'crm.customers'),
      echoesSuppressed: (await count(app, echoes, 'app.customers')) + (await count(crm, echoes, 'crm.customers')),
    };
    const [appRows, crmRows] = [await readCustomers(app, 'app'), await readCustomers(crm, 'crm')];
    // Rejected edits stay where they were made: the CRM's email of 5, the app's lifecycle stage of 6.
    const allowed = (c: Customer | undefined) => c && { ...c, email: c.id === 5 ? null : c.email, lifecycle_stage: c.id === 6 ? null : c.lifecycle_stage };
    const ids = [...new Set([...appRows, ...crmRows].map((c) => c.id))];
    const diverged = ids.filter(
      (id) => JSON.stringify(allowed(appRows.find((c) => c.id === id))) !== JSON.stringify(allowed(crmRows.find((c) => c.id === id))),
    );
    const reviews = await listReviews(flows, false, pino({ level: 'warn' }));
    return { app: appRows, crm: crmRows, decisions, reviews, edits, writes, diverged, flowFiles: ['flows/app-to-crm.yaml', 'flows/crm-to-app.yaml'] };
  } finally {
    await stop();
    await admin.disconnect().catch(() => undefined);
    await app.end();
    await crm.end();
  }
}
