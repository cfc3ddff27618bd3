import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import type { ChangeEvent } from '../../src/model/change.js';
import type { TableMapping } from '../../src/model/table.js';
import { compilePolicies } from '../../src/policy/policy.js';
import type { Governance } from '../../src/sink/governance.js';
import { GovernedSink } from '../../src/sink/postgres/governed-sink.js';
import { PostgresSink } from '../../src/sink/postgres/postgres-sink.js';
import { endpoints, uniqueName } from '../support/capture.js';
import { changeAt } from '../support/events.js';

/**
 * A delete the source made against a concurrent change in the destination loses: the record is put
 * back into the source. That write happens only for a decision the destination committed — never for
 * one rolled back — and a restore the source could not take yet is carried out later, once.
 */
describe('restoring a record in the source under policy', () => {
  const src = uniqueName('restore_src');
  const dst = uniqueName('restore_dst');
  const flow = `${dst}-flow`;
  const sourceUrl = endpoints.postgresUrl('trustsync_source');
  const source = new pg.Pool({ connectionString: sourceUrl, max: 2 });
  const destination = new pg.Pool({ connectionString: endpoints.postgresUrl('trustsync_dest'), max: 2 });
  const m: TableMapping = { topic: `${src}.customers`, table: { schema: dst, table: 'customers' }, rename: {}, createIfMissing: false };
  const { policies } = compilePolicies(
    { customers: { default: { owner: 'app', writers: ['app', 'crm'], strategy: 'latest_valid_change', validators: [{ required: true }] }, fields: {} } },
    ['app', 'crm'],
    () => ['id', 'name'],
    new Map(),
  );
  const g: Governance = { flow, policy: policies.get('customers')!, sourceSystem: 'app', destinationSystem: 'crm' };
  let sink: PostgresSink;
  let governed: GovernedSink;
  let batches = 0;

  const event = (id: number, lsn: number, op: 'c' | 'd', name?: string): ChangeEvent =>
    changeAt(id, lsn, { entity: `${src}.customers`, op, before: null, after: op === 'd' ? null : { id, name: name! }, txId: String(lsn) });
  const apply = (...events: ChangeEvent[]) =>
    governed.applyGoverned(m, events, g, new Map(), { flow, extra: [], batchId: `00000000-0000-4000-8000-${String(++batches).padStart(12, '0')}` });
  /**
   * Key `id` as the conflict leaves it: created from the source, edited in the destination since,
   * and deleted in the source (the delete's capture is what the test applies).
   */
  const conflicted = async (id: number, lsn: number) => {
    await source.query(`INSERT INTO ${src}.customers VALUES ($1, 'from the app')`, [id]);
    await apply(event(id, lsn, 'c', 'from the app'));
    await destination.query(`UPDATE ${dst}.customers SET name = 'kept by the crm' WHERE id = $1`, [id]);
    await source.query(`DELETE FROM ${src}.customers WHERE id = $1`, [id]);
    return event(id, lsn + 10, 'd');
  };
  const inSource = async (id: number) => (await source.query<{ name: string }>(`SELECT name FROM ${src}.customers WHERE id = $1`, [id])).rows[0]?.name;
  const pending = async () =>
    (await destination.query<{ n: number }>('SELECT count(*)::int AS n FROM trustsync.pending_restores WHERE flow = $1', [flow])).rows[0]!.n;

  beforeAll(async () => {
    await source.query(`CREATE SCHEMA ${src}; CREATE TABLE ${src}.customers (id int PRIMARY KEY, name text NOT NULL)`);
    await destination.query(`CREATE SCHEMA ${dst}; CREATE TABLE ${dst}.customers (id int PRIMARY KEY, name text NOT NULL)`);
    sink = new PostgresSink(destination);
    governed = new GovernedSink(sink, { name: flow, flow, sourceUrl });
    await governed.prepare();
  });

  afterAll(async () => {
    await governed?.close();
    await source.query(`DROP SCHEMA IF EXISTS ${src} CASCADE`);
    await destination.query(`DROP SCHEMA IF EXISTS ${dst} CASCADE`);
    await destination.query('DROP FUNCTION IF EXISTS trustsync.refuse_restore_test() CASCADE');
    for (const db of [source, destination]) await db.query('DELETE FROM trustsync.history WHERE flow = $1', [flow]);
    await source.end();
    await destination.end();
  });

  it('puts the record back into the source, as the destination holds it, once', async () => {
    const del = await conflicted(1, 100);
    const [d] = await apply(del);
    expect(d).toMatchObject({ decision: 'resolved', resolution: { action: 'none', restoreInSource: true } });
    expect(await inSource(1)).toBe('kept by the crm');
    expect(await pending()).toBe(0);
    // Delivered again: a duplicate, and no second restore.
    await source.query(`DELETE FROM ${src}.customers WHERE id = 1`);
    expect((await apply(del)).map((x) => x.decision)).toEqual(['skipped']);
    expect(await inSource(1)).toBeUndefined();
  });

  it('writes nothing into the source for a decision the destination rolled back', async () => {
    const del = await conflicted(2, 200);
    // The destination refuses the decision's bookkeeping for this key, after the restore was decided.
    await destination.query(`CREATE FUNCTION trustsync.refuse_restore_test() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW.target = '${dst}.customers' AND NEW.key = '2' THEN RAISE check_violation USING MESSAGE = 'refused for the test'; END IF; RETURN NEW; END $$;
      CREATE TRIGGER refuse_restore_test BEFORE UPDATE ON trustsync.row_state FOR EACH ROW EXECUTE FUNCTION trustsync.refuse_restore_test()`);
    try {
      const [d] = await apply(del);
      expect(d!.decision).toBe('rejected');
    } finally {
      await destination.query('DROP FUNCTION trustsync.refuse_restore_test() CASCADE');
    }
    expect(await inSource(2)).toBeUndefined();
    expect(await pending()).toBe(0);
  });

  it('a restore the source refuses for now fails the batch after its commit; the retry carries it out', async () => {
    const del = await conflicted(3, 300);
    await source.query(`CREATE FUNCTION ${src}.not_yet() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN RAISE EXCEPTION 'not yet' USING ERRCODE = 'lock_not_available'; END $$;
      CREATE TRIGGER not_yet BEFORE INSERT ON ${src}.customers FOR EACH ROW EXECUTE FUNCTION ${src}.not_yet()`);
    await expect(apply(del)).rejects.toMatchObject({ retriable: true });
    // The decision is durable in the destination, its restore waits there.
    expect(await pending()).toBe(1);
    expect(await inSource(3)).toBeUndefined();
    await source.query(`DROP TRIGGER not_yet ON ${src}.customers`);
    expect((await apply(del)).map((x) => x.decision)).toEqual(['skipped']);
    expect(await inSource(3)).toBe('kept by the crm');
    expect(await pending()).toBe(0);
  });

  it('a restore a stopped flow left behind is carried out when the flow starts again', async () => {
    const del = await conflicted(4, 400);
    await source.query(`CREATE TRIGGER not_yet BEFORE INSERT ON ${src}.customers FOR EACH ROW EXECUTE FUNCTION ${src}.not_yet()`);
    await expect(apply(del)).rejects.toMatchObject({ retriable: true });
    await source.query(`DROP TRIGGER not_yet ON ${src}.customers`);
    await governed.close();
    governed = new GovernedSink(sink, { name: flow, flow, sourceUrl });
    await governed.prepare();
    expect(await inSource(4)).toBe('kept by the crm');
    expect(await pending()).toBe(0);
  });
});
