import type pg from 'pg';
import { syncCustomersSql } from '../../src/demo/sync.js';
import { SourceCapture, pgClient } from './capture.js';

export interface TwoSides {
  app: pg.Client;
  crm: pg.Client;
  appTable: string;
  crmTable: string;
  /** Runs a user's statement and counts the rows it changed. */
  edit: (db: pg.Client, sql: string, params?: unknown[]) => Promise<void>;
}

/**
 * Users on both sides editing customers 12–26 at random moments: names, phones, status, each side's
 * own field, and now and then a delete. Seeded, so a failing run can be replayed; `between` runs
 * after each edit (a fault can be injected there).
 */
export async function editBothSidesAtRandom(
  sides: TwoSides,
  seed: number,
  count: number,
  between: (i: number) => Promise<void> = async () => undefined,
): Promise<void> {
  let state = seed;
  const random = () => (state = (state * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(random() * xs.length)]!;
  const keys = Array.from({ length: 15 }, (_, i) => 12 + i);
  for (let i = 0; i < count; i++) {
    const appSide = random() < 0.5;
    const db = appSide ? sides.app : sides.crm;
    const table = appSide ? sides.appTable : sides.crmTable;
    const id = pick(keys);
    const kind = i % 20 === 7 ? 'delete' : pick(['name', 'name', 'phones', 'phones', 'status', 'own', 'own']);
    if (kind === 'name') await sides.edit(db, `UPDATE ${table} SET name = $2 WHERE id = $1`, [id, `${appSide ? 'app' : 'crm'} edit ${i}`]);
    if (kind === 'phones') await sides.edit(db, `UPDATE ${table} SET phones = phones || $2::jsonb WHERE id = $1`, [id, JSON.stringify([`+${i}0${id}`])]);
    if (kind === 'status') await sides.edit(db, `UPDATE ${table} SET status = $2 WHERE id = $1`, [id, pick(['active', 'paused', 'closed'])]);
    if (kind === 'own' && appSide) await sides.edit(db, `UPDATE ${table} SET email = $2 WHERE id = $1`, [id, `e${i}.${id}@example.com`]);
    if (kind === 'own' && !appSide) await sides.edit(db, `UPDATE ${table} SET lifecycle_stage = $2 WHERE id = $1`, [id, pick(['lead', 'customer', 'churned'])]);
    if (kind === 'delete') await sides.edit(db, `DELETE FROM ${table} WHERE id = $1`, [id]);
    await new Promise((r) => setTimeout(r, Math.floor(random() * 150)));
    await between(i);
  }
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
