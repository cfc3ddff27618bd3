import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import pg from 'pg';
import { UNAVAILABLE_VALUE, type ChangeEvent } from '../../src/model/change.js';
import type { TableMapping } from '../../src/model/table.js';
import { compilePolicies } from '../../src/policy/policy.js';
import type { Governance } from '../../src/sink/governance.js';
import { GovernedSink } from '../../src/sink/postgres/governed-sink.js';
import { PostgresSink } from '../../src/sink/postgres/postgres-sink.js';
import { endpoints, uniqueName } from '../support/capture.js';
import { shuffledDeliveries, type SourceRow } from '../support/source-model.js';
import { changeAt } from '../support/events.js';

/**
 * Under a policy, with nobody editing the destination, the destination holds exactly what the
 * source holds: checked against an independent model of the source, whatever order, repetition and
 * batching the changes come in — TOAST placeholders, deletes and re-inserts included.
 */
describe('a destination under policy, changes in any order', () => {
  const schema = uniqueName('gov_props');
  const flow = `${schema}-flow`;
  const pool = new pg.Pool({ connectionString: endpoints.postgresUrl('trustsync_dest'), max: 3 });
  const m: TableMapping = { topic: 'docs', table: { schema, table: 'docs' }, rename: {}, createIfMissing: false };
  const { policies } = compilePolicies(
    { docs: { default: { owner: 'app', writers: ['app', 'crm'], strategy: 'external_wins' }, fields: {} } },
    ['app', 'crm'],
    () => ['id', 'v', 'notes'],
    new Map(),
  );
  const g: Governance = { flow, policy: policies.get('docs')!, sourceSystem: 'app', destinationSystem: 'crm' };
  let governed: GovernedSink;

  beforeAll(async () => {
    await pool.query(`CREATE SCHEMA ${schema}; CREATE TABLE ${schema}.docs (id bigint PRIMARY KEY, v text, notes text)`);
    governed = new GovernedSink(new PostgresSink(pool));
    await governed.prepare();
  });

  afterAll(async () => {
    await governed?.close();
    await pool.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    for (const t of ['row_state', 'history', 'outbound']) await pool.query(`DELETE FROM trustsync.${t} WHERE target = $1`, [`${schema}.docs`]);
    await pool.end();
  });

  const destination = async () =>
    new Map(
      (await pool.query<{ id: string; v: string; notes: string | null }>(`SELECT id::text, v, notes FROM ${schema}.docs`)).rows.map(
        (r): [number, SourceRow] => [Number(r.id), { v: r.v, notes: r.notes }],
      ),
    );

  it('any permutation with duplicates, deletes, re-inserts and TOAST placeholders, in any batch split, leaves the source’s rows', async () => {
    await fc.assert(
      fc.asyncProperty(shuffledDeliveries('docs'), async ({ source, delivered, batchSizes }) => {
        await pool.query(`TRUNCATE ${schema}.docs`);
        for (const t of ['row_state', 'outbound']) await pool.query(`DELETE FROM trustsync.${t} WHERE target = $1`, [`${schema}.docs`]);
        let i = 0;
        for (let b = 0; i < delivered.length; b++) {
          const size = batchSizes[b % batchSizes.length]!;
          const batch: ChangeEvent[] = delivered.slice(i, i + size);
          await governed.applyGoverned(m, batch, g, new Map(), { flow, extra: [] });
          i += size;
        }
        expect(await destination()).toEqual(source);
      }),
      { numRuns: 80 },
    );
  });

  it('a late value for a column the newest change left unchanged is weighed by the policy: taken, or kept from a concurrent edit here', async () => {
    // A field's owner is its "local" side: local_wins keeps the owner's value against a concurrent change.
    const notesOwnedBy = (owner: string) =>
      compilePolicies(
        { docs: { default: { owner: 'app', writers: ['app', 'crm'], strategy: 'external_wins' }, fields: { notes: { owner, strategy: 'local_wins' } } } },
        ['app', 'crm'],
        () => ['id', 'v', 'notes'],
        new Map(),
      ).policies.get('docs')!;
    const at = (id: number, lsn: bigint, op: 'c' | 'u', v: string, notes: string): ChangeEvent =>
      changeAt(id, lsn, { entity: 'src.docs', op, after: { id, v, notes }, txId: String(lsn) });
    const notesOf = async (id: number) => (await pool.query<{ notes: string }>(`SELECT notes FROM ${schema}.docs WHERE id = $1`, [id])).rows[0]!.notes;
    for (const [id, policy, edited, expected] of [
      [11, g.policy, false, 'from the late change'],
      [12, notesOwnedBy('crm'), true, 'edited here'],
      [13, notesOwnedBy('app'), true, 'from the late change'],
    ] as const) {
      const gov = { ...g, policy };
      await governed.applyGoverned(m, [at(id, 10n, 'c', 'a', 'first')], gov, new Map(), { flow, extra: [] });
      await governed.applyGoverned(m, [at(id, 30n, 'u', 'newest', UNAVAILABLE_VALUE)], gov, new Map(), { flow, extra: [] });
      if (edited) await pool.query(`UPDATE ${schema}.docs SET notes = 'edited here' WHERE id = $1`, [id]);
      const [late] = await governed.applyGoverned(m, [at(id, 20n, 'u', 'older', 'from the late change')], gov, new Map(), { flow, extra: [] });
      expect(late!.decision).toBe(expected === 'edited here' ? 'skipped' : 'filled');
      expect(await notesOf(id)).toBe(expected);
      // v stays the newest change's; a repeat of the late change fills nothing more.
      expect((await pool.query(`SELECT v FROM ${schema}.docs WHERE id = $1`, [id])).rows[0].v).toBe('newest');
      expect((await governed.applyGoverned(m, [at(id, 20n, 'u', 'older', 'again')], gov, new Map(), { flow, extra: [] }))[0]!.decision).toBe('skipped');
    }
    const { rows } = await pool.query(`SELECT decision, reason FROM trustsync.history WHERE target = $1 AND key = '11' AND decision = 'filled'`, [
      `${schema}.docs`,
    ]);
    expect(rows).toEqual([{ decision: 'filled', reason: expect.stringMatching(/^notes left unchanged \(TOAST\) by the change at/) }]);
  });
});
