import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { Partitioners, type Admin, type Kafka } from 'kafkajs';
import { loadSyncFlows, readCustomers, waitForSyncQuiet, type Customer } from '../../src/demo/sync.js';
import type { FlowConfig } from '../../src/flow/config.js';
import { listReviews, resolveReview } from '../../src/flow/review.js';
import type { FlowRunner } from '../../src/flow/run-flow.js';
import { kafkaClient, uniqueName, type SourceCapture } from '../support/capture.js';
import { startFlow } from '../support/flow.js';
import {
  closeTwoSides,
  editBothSidesAtRandom,
  openTwoSides,
  policyMismatches,
  reviewedStatus,
  writeCounts as countWrites,
  type TwoSides,
} from '../support/two-way.js';
import { explainKey } from '../../src/sink/postgres/explain-sql.js';
import { formatExplanation } from '../../src/history/explain.js';
import { readTopicsToEnd } from '../../src/kafka/read-topic.js';
import { reconcileFlow } from '../../src/reconcile/reconcile.js';
import pino from 'pino';

/**
 * Two databases, each captured by its own Debezium connector and each the destination of the
 * other's flow, governed by the shipped customer policy. Users edit the same customers on both
 * sides; both databases must end exactly where the policy says, with no write sent back and forth.
 */
const quiet = pino({ level: 'silent' });

describe('bidirectional sync under policy, app ⇄ crm', () => {
  const appSchema = uniqueName('bi_app');
  const crmSchema = uniqueName('bi_crm');
  let app: pg.Client;
  let crm: pg.Client;
  let kafka: Kafka;
  let admin: Admin;
  let captures: SourceCapture[] = [];
  let configs: FlowConfig[];
  let runners: FlowRunner[] = [];
  /** Every change a user made; trustsync's writes must stay within this many. */
  let genuineEdits = 0;

  const startFlows = async () => {
    runners = [];
    for (const c of configs) runners.push(await startFlow(c));
  };
  const stopFlows = async () => {
    for (const r of runners) await r.stop();
    runners = [];
  };
  const edit = async (db: pg.Client, sql: string, params: unknown[] = []) => {
    const changed = (await db.query(sql, params)).rowCount ?? 0;
    genuineEdits += changed;
    return changed;
  };
  const appTable = `${appSchema}.customers`;
  const crmTable = `${crmSchema}.customers`;

  const sides = (): TwoSides => ({ app, crm, appTable, crmTable, edit });
  const writeCounts = () => countWrites(sides());

  const quiesce = () =>
    waitForSyncQuiet(admin, configs, async () => JSON.stringify([await readCustomers(app, appSchema), await readCustomers(crm, crmSchema)]));
  const byId = (rows: Customer[]) => new Map(rows.map((r) => [r.id, r]));

  beforeAll(async () => {
    ({ app, crm, captures } = await openTwoSides(appSchema, crmSchema, edit));
    // The shipped flow files, for this test's own schemas, topics and consumer groups.
    configs = loadSyncFlows(appSchema, crmSchema).map((c) => ({ ...c, metrics: undefined, retry: { maxAttempts: 20, initialDelayMs: 50, maxDelayMs: 2000 } }));
    kafka = kafkaClient();
    admin = kafka.admin();
    await admin.connect();
    await startFlows();
    await quiesce();
  });

  afterAll(async () => {
    await stopFlows();
    await admin?.disconnect();
    await closeTwoSides(appSchema, crmSchema, { app, crm, captures });
  });

  it('copies the app’s customers into the CRM once, and the CRM’s capture of them is not sent back', async () => {
    const crmRows = await readCustomers(crm, crmSchema);
    expect(crmRows).toEqual(await readCustomers(app, appSchema));
    expect(crmRows).toHaveLength(30);
    const w = await writeCounts();
    expect(w).toEqual({ intoApp: 0, intoCrm: 30, echoedFromApp: 0, echoedFromCrm: 30 });
  });

  it('resolves edits made on both sides without seeing each other exactly as the policy says', async () => {
    // The flows are down while users on both sides edit: every pair of edits below is truly concurrent.
    await stopFlows();
    const pause = () => new Promise((r) => setTimeout(r, 60));
    const a = (sql: string) => edit(app, sql.replace('{T}', appTable));
    const c = (sql: string) => edit(crm, sql.replace('{T}', crmTable));
    await a(`UPDATE {T} SET name = 'Ada (app)' WHERE id = 1`); // different fields: both kept
    await c(`UPDATE {T} SET phones = '["+10001", "+20001"]' WHERE id = 1`);
    await a(`UPDATE {T} SET status = 'paused' WHERE id = 2`); // same field under manual_review
    await c(`UPDATE {T} SET status = 'closed' WHERE id = 2`);
    await a(`UPDATE {T} SET phones = '["+10003", "+30003"]' WHERE id = 3`); // merged
    await c(`UPDATE {T} SET phones = '["+40003", "+10003"]' WHERE id = 3`);
    await a(`UPDATE {T} SET name = 'Named in the app' WHERE id = 4`); // latest valid change: the CRM's is later
    await pause();
    await c(`UPDATE {T} SET name = 'Named in the CRM' WHERE id = 4`);
    await a(`DELETE FROM {T} WHERE id = 5`); // a delete against a concurrent edit: the record is kept
    await c(`UPDATE {T} SET name = 'Kept by the CRM' WHERE id = 5`);
    await a(`UPDATE {T} SET email = 'new6@example.com' WHERE id = 6`); // each side its own field
    await c(`UPDATE {T} SET lifecycle_stage = 'customer' WHERE id = 6`);
    await a(`UPDATE {T} SET lifecycle_stage = 'churned' WHERE id = 7`); // the app may not set the lifecycle
    await a(`UPDATE {T} SET email = 'not-an-email' WHERE id = 8`); // invalid
    await c(`DELETE FROM {T} WHERE id = 9`);
    await a(`UPDATE {T} SET name = 'Edited in the app' WHERE id = 9`);
    await a(`DELETE FROM {T} WHERE id = 10`); // an unopposed delete
    await c(`UPDATE {T} SET email = 'crm@example.com' WHERE id = 11`); // the CRM may not set email
    await startFlows();
    await quiesce();

    const appRows = byId(await readCustomers(app, appSchema));
    const crmRows = byId(await readCustomers(crm, crmSchema));
    const expected = (id: number, change: Partial<Customer>): Customer => ({
      id,
      name: `Customer ${id}`,
      email: `c${id}@example.com`,
      phones: [`+1000${id}`],
      lifecycle_stage: null,
      status: 'active',
      ...change,
    });
    const agreed: Customer[] = [
      expected(1, { name: 'Ada (app)', phones: ['+10001', '+20001'] }),
      expected(2, { status: 'paused' }),
      expected(3, { phones: ['+10003', '+30003', '+40003'] }),
      expected(4, { name: 'Named in the CRM' }),
      expected(5, { name: 'Kept by the CRM' }),
      expected(6, { email: 'new6@example.com', lifecycle_stage: 'customer' }),
      expected(9, { name: 'Edited in the app' }),
    ];
    for (const row of agreed) {
      expect(crmRows.get(row.id)).toEqual(row);
      expect(appRows.get(row.id)).toEqual(row);
    }
    expect(appRows.has(10)).toBe(false);
    expect(crmRows.has(10)).toBe(false);
    // Rejected changes stay where they were made, and nowhere else.
    expect(crmRows.get(7)!.lifecycle_stage).toBeNull();
    expect(appRows.get(7)!.lifecycle_stage).toBe('churned');
    expect(crmRows.get(8)!.email).toBe('c8@example.com');
    expect(appRows.get(11)!.email).toBe('c11@example.com');

    const reasons = async (db: pg.Client, target: string, key: string) =>
      (await db.query<{ reason: string }>('SELECT reason FROM trustsync.history WHERE target = $1 AND key = $2 ORDER BY id', [target, key])).rows
        .map((r) => r.reason)
        .join('\n');
    expect(await reasons(crm, crmTable, '7')).toMatch(/lifecycle_stage rejected \(authority\): app may not write lifecycle_stage/);
    expect(await reasons(crm, crmTable, '8')).toMatch(/email rejected \(validation\): format:email/);
    expect(await reasons(app, appTable, '11')).toMatch(/email rejected \(authority\): crm may not write email/);
    // The app's delete of 5 lost to the CRM's edit: the flow reading the delete put the record back.
    expect(await reasons(app, appTable, '5')).toMatch(/restored: app's delete lost to a concurrent change in crm/);
    expect(await reasons(crm, crmTable, '9')).toMatch(/restored: crm's delete lost to a concurrent change in app/);

    // The one same-field conflict under manual_review is queued once, under one id, from both directions.
    const reviewIds = async (db: pg.Client, target: string) =>
      (await db.query<{ id: string }>('SELECT id FROM trustsync.review WHERE target = $1 ORDER BY id', [target])).rows.map((r) => r.id);
    const fromCrm = await reviewIds(crm, crmTable);
    expect(fromCrm).toHaveLength(1);
    expect(await reviewIds(app, appTable)).toEqual(fromCrm);
    const [item] = await listReviews(configs, false, quiet);
    expect(item).toMatchObject({ entity: 'customers', key: '2', field: 'status', owner: 'app', keptValue: 'paused', proposer: 'crm', proposedValue: 'closed' });
  });

  it('converges after users on both sides edit the same customers at random moments, with writes bounded by the edits', async () => {
    // TRUSTSYNC_TEST_SEED / TRUSTSYNC_TEST_EDITS replay or stretch the script.
    const edits = await editBothSidesAtRandom(sides(), Number(process.env.TRUSTSYNC_TEST_SEED ?? 20261123), Number(process.env.TRUSTSYNC_TEST_EDITS ?? 60));
    await quiesce();
    const inRange = (rows: Customer[]) => rows.filter((r) => r.id >= 12);
    const [crmRows, appRows] = [inRange(await readCustomers(crm, crmSchema)), inRange(await readCustomers(app, appSchema))];
    const differing = [...new Set([...crmRows, ...appRows].map((r) => r.id))].filter(
      (id) => JSON.stringify(crmRows.find((r) => r.id === id)) !== JSON.stringify(appRows.find((r) => r.id === id)),
    );
    if (differing.length && process.env.TRUSTSYNC_TEST_STORY) {
      for (const id of differing) {
        const story = async (db: pg.Client, target: string) =>
          (
            await db.query('SELECT id, decision, op, tx_id, reason, new_values, fields FROM trustsync.history WHERE target = $1 AND key = $2 ORDER BY id', [
              target,
              String(id),
            ])
          ).rows;
        process.stderr.write(`\n=== ${id}\napp ${JSON.stringify(appRows.find((r) => r.id === id))}\ncrm ${JSON.stringify(crmRows.find((r) => r.id === id))}\n`);
        process.stderr.write(
          `into crm: ${JSON.stringify(await story(crm, crmTable), null, 1)}\ninto app: ${JSON.stringify(await story(app, appTable), null, 1)}\n`,
        );
      }
    }
    expect(crmRows).toEqual(appRows);
    // And both hold what the policy makes of the edits, by a model of it apart from trustsync.
    const statusReviewed = await reviewedStatus(crm, crmTable);
    expect(policyMismatches(appRows, edits, statusReviewed)).toEqual([]);
    expect(policyMismatches(crmRows, edits, statusReviewed)).toEqual([]);

    // No loops, no ping-pong: trustsync wrote at most once per genuine edit, and every write it made
    // came back captured and was recognised as its own.
    const w = await writeCounts();
    expect(w.intoApp + w.intoCrm).toBeLessThanOrEqual(genuineEdits);
    expect(w.echoedFromApp).toBe(w.intoApp);
    expect(w.echoedFromCrm).toBe(w.intoCrm);
    // Each review item is known to both directions under the same id.
    const ids = async (db: pg.Client, target: string) =>
      (await db.query<{ id: string }>('SELECT id FROM trustsync.review WHERE target = $1 ORDER BY id', [target])).rows.map((r) => r.id);
    expect(await ids(app, appTable)).toEqual(await ids(crm, crmTable));
  });

  it('resolving a review item updates both databases once, and neither write is echoed back', async () => {
    const open = await listReviews(configs, false, quiet);
    const item = open.find((i) => i.key === '2')!;
    const before = await writeCounts();
    const { outcomes } = await resolveReview(configs, item.id, { take: 'external' }, quiet);
    expect(outcomes.map((o) => o.wrote)).toEqual([true, true]);
    await quiesce();
    expect(byId(await readCustomers(app, appSchema)).get(2)!.status).toBe('closed');
    expect(byId(await readCustomers(crm, crmSchema)).get(2)!.status).toBe('closed');
    const after = await writeCounts();
    expect(after).toEqual({
      intoApp: before.intoApp + 1,
      intoCrm: before.intoCrm + 1,
      echoedFromApp: before.echoedFromApp + 1,
      echoedFromCrm: before.echoedFromCrm + 1,
    });
    expect((await listReviews(configs, false, quiet)).some((i) => i.id === item.id)).toBe(false);
    await expect(resolveReview(configs, item.id, { take: 'local' }, quiet)).rejects.toThrow(/already resolved/);
    const story = await explainKey(crm, crmTable, '2');
    expect(story.timeline.map((t) => t.decision)).toContain('review-resolved');
    if ((story.believed as { status?: string } | null)?.status !== 'closed')
      process.stderr.write(`explain of crm key 2:\n${JSON.stringify(story.timeline, null, 1)}\n`);
    expect(story.believed).toMatchObject({ status: 'closed' });
    expect(story.state!.agreed).toMatchObject({ status: 'closed' });
  });

  it('reconciles by policy: one way a CRM-owned field is the CRM’s own; two ways each field is held to its owner’s value, repaired where missing, never echoed', async () => {
    // Every change in either database is captured and on its way: what persists once the flows are
    // idle is what the policies left apart. 7 and 11 hold rejected edits (the app's lifecycle stage,
    // the CRM's email), 8 the app's invalid email.
    await stopFlows();
    const reconcile = (repair: boolean, reverse?: FlowConfig) =>
      reconcileFlow(configs[0]!, { buckets: 8, settleMs: 0, repair, reverse, progress: () => undefined, log: quiet });
    const actions = (r: Awaited<ReturnType<typeof reconcile>>) =>
      r.tables[0]!.differences.map((d) => [d.key, d.field, d.recommendedAction]).sort((a, b) => Number(a[0]) - Number(b[0]));
    expect(actions(await reconcile(false))).toEqual([
      ['7', 'lifecycle_stage', 'ignore'],
      ['8', 'email', 'manual-review'],
      ['11', 'email', 'update-destination'],
    ]);
    const before = await writeCounts();
    const twoWay = await reconcile(true, configs[1]);
    expect(actions(twoWay)).toEqual([
      ['7', 'lifecycle_stage', 'update-source'],
      ['8', 'email', 'manual-review'],
      ['11', 'email', 'update-destination'],
    ]);
    expect(twoWay.tables[0]!.differences.find((d) => d.key === '8')!.why).toMatch(/app's value fails email's policy \(format:email/);
    const repaired = async () => ({ app: byId(await readCustomers(app, appSchema)), crm: byId(await readCustomers(crm, crmSchema)) });
    const r = await repaired();
    expect([r.app.get(7)!.lifecycle_stage, r.crm.get(11)!.email]).toEqual([null, 'c11@example.com']);
    const again = await reconcile(false, configs[1]);
    expect(actions(again)).toEqual([['8', 'email', 'manual-review']]);
    expect(again.clean).toBe(false);

    // The repairs' captures come back and are known as trustsync's own: nothing moves.
    await startFlows();
    await quiesce();
    await stopFlows();
    expect(await repaired()).toEqual(r);
    expect(await writeCounts()).toEqual({
      intoApp: before.intoApp + 1,
      intoCrm: before.intoCrm + 1,
      echoedFromApp: before.echoedFromApp + 1,
      echoedFromCrm: before.echoedFromCrm + 1,
    });
    const story = await explainKey(app, appTable, '7');
    expect(story.timeline.at(-1)).toMatchObject({
      decision: 'repaired',
      values: { lifecycle_stage: null },
      reason: "reconcile: app lacked the owner's (crm) value",
    });
  });

  it('leaves a record a flow writes between reconcile finding its difference and repairing it to the flow: an older value is never written back', async () => {
    // The CRM's edit of the app-owned email is rejected on its way to the app: a difference to repair.
    await startFlows();
    await edit(crm, `UPDATE ${crmTable} SET email = 'crm-edit.28@example.com' WHERE id = 28`);
    await quiesce();
    await stopFlows();
    const email = async () => (await readCustomers(crm, crmSchema)).find((c) => c.id === 28)!.email;
    expect(await email()).toBe('crm-edit.28@example.com');
    // Found, then, before the repair writes: the owner changes the email and the flow carries it into the CRM.
    const report = await reconcileFlow(configs[0]!, {
      buckets: 8,
      settleMs: 0,
      repair: true,
      log: quiet,
      progress: async (line: string) => {
        if (!line.trim().startsWith('repairing')) return;
        await startFlows();
        await edit(app, `UPDATE ${appTable} SET email = 'owner-new.28@example.com' WHERE id = 28`);
        await quiesce();
        await stopFlows();
      },
    });
    expect(report.tables[0]!.differences.filter((d) => d.key === '28')).toEqual([]);
    expect(report.tables[0]!.settled).toBeGreaterThan(0);
    expect(await email()).toBe('owner-new.28@example.com');
    const repairs = await crm.query(`SELECT count(*)::int AS n FROM trustsync.history WHERE target = $1 AND key = '28' AND decision = 'repaired'`, [crmTable]);
    expect(repairs.rows[0].n).toBe(0);
  });

  it('explains one customer’s story exactly: create, an edit from each side, an echo, a rejection, a stale re-delivery, a conflict', async () => {
    await startFlows();
    const a = (sql: string) => edit(app, sql.replaceAll('{T}', appTable));
    const c = (sql: string) => edit(crm, sql.replaceAll('{T}', crmTable));
    await a(`INSERT INTO {T} (id, name, email) VALUES (40, 'Story', 'story@example.com')`);
    await quiesce();
    await a(`UPDATE {T} SET name = 'Story, renamed' WHERE id = 40`);
    await quiesce();
    await c(`UPDATE {T} SET lifecycle_stage = 'lead' WHERE id = 40`);
    await quiesce();
    await a(`UPDATE {T} SET lifecycle_stage = 'customer' WHERE id = 40`);
    await quiesce();
    // At-least-once delivery: the app's rename arrives again.
    const records = await readTopicsToEnd(kafka, [configs[0]!.tables[0]!.topic]);
    const rename = records.find((r) => r.message.value && JSON.parse(r.message.value.toString()).after?.name === 'Story, renamed')!;
    const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
    await producer.connect();
    await producer.send({ topic: rename.topic, messages: [{ key: rename.message.key, value: rename.message.value, partition: rename.partition }] });
    await producer.disconnect();
    await quiesce();
    await stopFlows();
    await a(`UPDATE {T} SET status = 'paused' WHERE id = 40`);
    await c(`UPDATE {T} SET status = 'closed' WHERE id = 40`);
    await startFlows();
    await quiesce();

    const story = await explainKey(crm, crmTable, '40');
    expect(story.timeline.map((t) => [t.decision, t.field ?? t.op])).toEqual([
      ['applied', 'c'],
      ['applied', 'u'],
      ['echo-suppressed', 'u'],
      ['unchanged', 'u'],
      ['rejected-authority', 'lifecycle_stage'],
      ['skipped-stale', 'u'],
      ['applied', 'u'],
      ['review-requested', 'status'],
    ]);
    expect(story.timeline[1]).toMatchObject({ values: { name: 'Story, renamed' }, oldValues: { name: 'Story' } });
    expect(story.timeline[4]!.reason).toBe('app may not write lifecycle_stage (owner crm, writers crm)');
    expect(story.timeline[7]).toMatchObject({ values: { status: 'paused' }, oldValues: { status: 'closed' } });
    // The stale re-delivery is the same source change as the rename: one correlation id.
    expect(story.timeline[5]!.correlationId).toBe(story.timeline[1]!.correlationId);
    expect(story.believed).toMatchObject({ name: 'Story, renamed', status: 'paused' });
    expect(formatExplanation(story)).toMatch(/rejected-authority +field lifecycle_stage\n +why: app may not write lifecycle_stage/);
  });
});
