import type pg from 'pg';
import { syncCustomersSql, type Customer } from '../../src/demo/sync.js';
import { SourceCapture, pgClient } from './capture.js';

export interface TwoSides {
  app: pg.Client;
  crm: pg.Client;
  appTable: string;
  crmTable: string;
  /** Runs a user's statement, counts the rows it changed, and returns how many. */
  edit: (db: pg.Client, sql: string, params?: unknown[]) => Promise<number>;
}

/** One user's edit in the random script, and whether it changed a row (a deleted customer's does not). */
export interface UserEdit {
  side: 'app' | 'crm';
  id: number;
  kind: 'name' | 'phones' | 'status' | 'email' | 'lifecycle_stage' | 'delete';
  value: string | null;
  changed: boolean;
}

/**
 * Users on both sides editing customers 12–26 at random moments: names, phones, status, each side's
 * own field, and now and then a delete. Seeded, so a failing run can be replayed; `between` runs
 * after each edit (a fault can be injected there). Returns the edits, in the order they were made.
 */
export async function editBothSidesAtRandom(
  sides: TwoSides,
  seed: number,
  count: number,
  between: (i: number) => Promise<void> = async () => undefined,
): Promise<UserEdit[]> {
  let state = seed;
  const random = () => (state = (state * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(random() * xs.length)]!;
  const keys = Array.from({ length: 15 }, (_, i) => 12 + i);
  const edits: UserEdit[] = [];
  for (let i = 0; i < count; i++) {
    const appSide = random() < 0.5;
    const side = appSide ? 'app' : 'crm';
    const db = appSide ? sides.app : sides.crm;
    const table = appSide ? sides.appTable : sides.crmTable;
    const id = pick(keys);
    const kind = i % 20 === 7 ? 'delete' : pick(['name', 'name', 'phones', 'phones', 'status', 'own', 'own']);
    const run = async (k: UserEdit['kind'], value: string | null, sql: string) =>
      edits.push({ side, id, kind: k, value, changed: (await sides.edit(db, sql, value === null ? [id] : [id, value])) > 0 });
    if (kind === 'name') await run('name', `${side} edit ${i}`, `UPDATE ${table} SET name = $2 WHERE id = $1`);
    if (kind === 'phones') await run('phones', `+${i}0${id}`, `UPDATE ${table} SET phones = phones || jsonb_build_array($2::text) WHERE id = $1`);
    // Setting the value a field already holds changes nothing: the edit counts only when it changes the field.
    if (kind === 'status')
      await run('status', pick(['active', 'paused', 'closed']), `UPDATE ${table} SET status = $2 WHERE id = $1 AND status IS DISTINCT FROM $2`);
    if (kind === 'own' && appSide) await run('email', `e${i}.${id}@example.com`, `UPDATE ${table} SET email = $2 WHERE id = $1`);
    if (kind === 'own' && !appSide)
      await run(
        'lifecycle_stage',
        pick(['lead', 'customer', 'churned']),
        `UPDATE ${table} SET lifecycle_stage = $2 WHERE id = $1 AND lifecycle_stage IS DISTINCT FROM $2`,
      );
    if (kind === 'delete') await run('delete', null, `DELETE FROM ${table} WHERE id = $1`);
    await new Promise((r) => setTimeout(r, Math.floor(random() * 150)));
    await between(i);
  }
  return edits;
}

/**
 * What the shipped customer policy must make of the random edits, modelled apart from trustsync: per
 * customer never deleted, the app's last email, the CRM's last lifecycle stage, the last name anyone
 * set (latest_valid_change: the later commit wins, and the script's edits are one after another),
 * every phone anyone added (merge), and the last status unless a conflict on it went to review.
 * Returns each way `rows` (one side's customers 12–26) differ from it; customers a delete touched are
 * only compared between the sides.
 */
export function policyMismatches(rows: readonly Customer[], edits: readonly UserEdit[], statusReviewed: ReadonlySet<number>): string[] {
  const deleted = new Set(edits.filter((e) => e.kind === 'delete').map((e) => e.id));
  const problems: string[] = [];
  for (let id = 12; id <= 26; id++) {
    if (deleted.has(id)) continue;
    const row = rows.find((r) => r.id === id);
    if (!row) {
      problems.push(`${id}: missing`);
      continue;
    }
    const mine = edits.filter((e) => e.id === id && e.changed);
    const last = (kind: UserEdit['kind'], side?: UserEdit['side']) => mine.filter((e) => e.kind === kind && (!side || e.side === side)).at(-1)?.value;
    const expected: Omit<Customer, 'id' | 'phones'> = {
      name: last('name') ?? `Customer ${id}`,
      email: last('email', 'app') ?? `c${id}@example.com`,
      lifecycle_stage: last('lifecycle_stage', 'crm') ?? null,
      status: statusReviewed.has(id) ? row.status : (last('status') ?? 'active'),
    };
    for (const [field, value] of Object.entries(expected)) {
      if (row[field as keyof Customer] !== value)
        problems.push(`${id}.${field}: ${JSON.stringify(row[field as keyof Customer])}, the policy says ${JSON.stringify(value)}`);
    }
    const phones = [`+1000${id}`, ...mine.filter((e) => e.kind === 'phones').map((e) => e.value!)].sort();
    if (JSON.stringify([...row.phones].sort()) !== JSON.stringify(phones))
      problems.push(`${id}.phones: ${JSON.stringify(row.phones)}, the policy says ${JSON.stringify(phones)}`);
  }
  return problems;
}

/** Customers whose status went to review (a conflict under manual_review): the model leaves their status to it. */
export async function reviewedStatus(db: pg.Client, target: string): Promise<Set<number>> {
  const { rows } = await db.query<{ key: string }>("SELECT key FROM trustsync.review WHERE target = $1 AND field = 'status'", [target]);
  return new Set(rows.map((r) => Number(r.key)));
}

/**
 * trustsync's writes into each side, and how many of them came back captured and were suppressed:
 * distinct captured changes, since a flow that re-reads after a crash decides an echo again.
 */
export async function writeCounts(sides: TwoSides): Promise<{ intoApp: number; intoCrm: number; echoedFromApp: number; echoedFromCrm: number }> {
  const count = async (db: pg.Client, target: string) =>
    Number((await db.query('SELECT count(*) AS n FROM trustsync.outbound WHERE target = $1', [target])).rows[0].n);
  const echoes = async (db: pg.Client, target: string) =>
    Number(
      (await db.query("SELECT count(DISTINCT correlation_id) AS n FROM trustsync.history WHERE target = $1 AND decision = 'echo-suppressed'", [target])).rows[0]
        .n,
    );
  return {
    intoApp: await count(sides.app, sides.appTable),
    intoCrm: await count(sides.crm, sides.crmTable),
    echoedFromApp: await echoes(sides.crm, sides.crmTable),
    echoedFromCrm: await echoes(sides.app, sides.appTable),
  };
}

export interface TwoDatabases {
  app: pg.Client;
  crm: pg.Client;
  captures: SourceCapture[];
}

/**
 * Both databases get the sync's customers table, the app 30 customers (through `edit`, so they
 * count as users' edits), and each side a Debezium connector of its own.
 */
export async function openTwoSides(appSchema: string, crmSchema: string, edit: TwoSides['edit']): Promise<TwoDatabases> {
  const app = await pgClient('trustsync_source');
  const crm = await pgClient('trustsync_dest');
  await app.query(syncCustomersSql(appSchema));
  await crm.query(syncCustomersSql(crmSchema));
  for (let id = 1; id <= 30; id++) {
    await edit(app, `INSERT INTO ${appSchema}.customers (id, name, email, phones) VALUES ($1, $2, $3, $4)`, [
      id,
      `Customer ${id}`,
      `c${id}@example.com`,
      JSON.stringify([`+1000${id}`]),
    ]);
  }
  const captures = [
    new SourceCapture(appSchema, appSchema, ['customers'], 'json', { SOURCE_DB: 'trustsync_source', PARTITIONS: '3' }),
    new SourceCapture(crmSchema, crmSchema, ['customers'], 'json', { SOURCE_DB: 'trustsync_dest', PARTITIONS: '3' }),
  ];
  for (const c of captures) await c.start();
  return { app, crm, captures };
}

/** Removes the connectors, both schemas and trustsync's write records about them. */
export async function closeTwoSides(appSchema: string, crmSchema: string, sides: Partial<TwoDatabases>): Promise<void> {
  for (const c of sides.captures ?? []) await c.stop();
  await sides.app?.query(`DROP SCHEMA IF EXISTS ${appSchema} CASCADE`);
  await sides.crm?.query(`DROP SCHEMA IF EXISTS ${crmSchema} CASCADE`);
  await sides.app?.query('DELETE FROM trustsync.outbound WHERE target = $1', [`${appSchema}.customers`]);
  await sides.crm?.query('DELETE FROM trustsync.outbound WHERE target = $1', [`${crmSchema}.customers`]);
  await sides.app?.end();
  await sides.crm?.end();
}
