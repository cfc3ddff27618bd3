import type pg from 'pg';
import type { Admin } from 'kafkajs';
import { join } from 'node:path';
import { loadFlowFile, type FlowConfig } from '../flow/config.js';
import { PACKAGE_DIR } from '../stack/settings.js';
import { quoteIdent } from '../sink/postgres/sql.js';
import { topicOffsets } from '../kafka/topics.js';

/**
 * The customer record a bidirectional sync keeps between two systems (the app and the CRM): the
 * same table on both sides. REPLICA IDENTITY FULL gives each captured update its before-image, so
 * trustsync knows exactly which fields a change touched.
 */
export function syncCustomersSql(schema: string): string {
  const s = quoteIdent(schema);
  return `
    CREATE SCHEMA IF NOT EXISTS ${s};
    CREATE TABLE IF NOT EXISTS ${s}.customers (
      id              integer PRIMARY KEY,
      name            text NOT NULL,
      email           text,
      phones          jsonb NOT NULL DEFAULT '[]',
      lifecycle_stage text,
      status          text NOT NULL DEFAULT 'active'
    );
    ALTER TABLE ${s}.customers REPLICA IDENTITY FULL;`;
}

/** The shipped flow files of the app ⇄ crm sync, both directions, for the given schemas. */
export function loadSyncFlows(appSchema = 'app', crmSchema = 'crm', env: Record<string, string | undefined> = process.env): [FlowConfig, FlowConfig] {
  const vars = { ...env, TRUSTSYNC_SYNC_APP: appSchema, TRUSTSYNC_SYNC_CRM: crmSchema };
  return [loadFlowFile(join(PACKAGE_DIR, 'flows', 'app-to-crm.yaml'), vars), loadFlowFile(join(PACKAGE_DIR, 'flows', 'crm-to-app.yaml'), vars)];
}

export interface Customer {
  id: number;
  name: string;
  email: string | null;
  phones: string[];
  lifecycle_stage: string | null;
  status: string;
}

export async function readCustomers(db: pg.Client | pg.Pool, schema: string): Promise<Customer[]> {
  const { rows } = await db.query<Customer>(`SELECT id, name, email, phones, lifecycle_stage, status FROM ${quoteIdent(schema)}.customers ORDER BY id`);
  return rows;
}

/**
 * Waits until a sync is quiet: every record of its flows' topics consumed and committed, and
 * `state` (the tables on both sides) unchanged for `quietMs`. A topic the capture has not created
 * yet (Debezium creates it with its first record) counts as not caught up.
 */
export async function waitForSyncQuiet(
  admin: Admin,
  flows: readonly FlowConfig[],
  state: () => Promise<string>,
  quietMs = 3000,
  timeoutMs = 120_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  let stableSince = Date.now();
  for (;;) {
    const offsets: string[] = [];
    let caughtUp = true;
    const existing = new Set(await admin.listTopics());
    for (const f of flows) {
      for (const topic of f.tables.map((t) => t.topic)) {
        if (!existing.has(topic)) {
          caughtUp = false;
          offsets.push(`${topic}:not created yet`);
          continue;
        }
        const high = await topicOffsets(admin, topic);
        const [committed] = await admin.fetchOffsets({ groupId: f.group, topics: [topic] });
        for (const p of high) {
          const done = committed?.partitions.find((x) => x.partition === p.partition)?.offset ?? '-1';
          if (Number(p.high) > 0 && Number(done) < Number(p.high)) caughtUp = false;
          offsets.push(`${topic}/${p.partition}:${done}/${p.high}`);
        }
      }
    }
    const now = `${offsets.join(' ')}|${await state()}`;
    if (now !== last) {
      last = now;
      stableSince = Date.now();
    } else if (caughtUp && Date.now() - stableSince >= quietMs) {
      return;
    }
    if (Date.now() > deadline) throw new Error(`the sync did not settle within ${timeoutMs / 1000}s (committed/end offsets: ${offsets.join(' ')})`);
    await new Promise((r) => setTimeout(r, 500));
  }
}
