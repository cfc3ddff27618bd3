import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { compilePolicies, policiesSpec, STRATEGIES, type EntityPolicy } from '../../src/policy/policy.js';
import { resolveChange, type Side, type Values } from '../../src/policy/resolve.js';

/** The README's customer: email owned by the app, lifecycle stage by the CRM, phones merged, status reviewed. */
function customerPolicy(overrides: Record<string, unknown> = {}): EntityPolicy {
  const spec = policiesSpec.parse({
    customers: {
      default: { owner: 'app', writers: ['app', 'crm'], strategy: 'latest_valid_change', validators: [{ required: true }] },
      fields: {
        email: { owner: 'app', strategy: 'local_wins', validators: [{ format: 'email' }] },
        lifecycle_stage: { owner: 'crm', strategy: 'external_wins', validators: [{ enum: ['lead', 'customer', 'churned'] }] },
        phones: { owner: 'app', writers: ['app', 'crm'], strategy: 'merge', fallback: 'local_wins' },
        status: {
          owner: 'app',
          writers: ['app', 'crm'],
          strategy: 'manual_review',
          validators: [{ transitions: { active: ['paused', 'closed'], paused: ['active', 'closed'] } }],
        },
        ...overrides,
      },
    },
  });
  const { policies, problems } = compilePolicies(spec, ['app', 'crm'], () => undefined, new Map());
  expect(problems).toEqual([]);
  return policies.get('customers')!;
}

function side(system: string, values: Values | null, changed: string[] = [], extra: Partial<Side> = {}): Side {
  return { system, values, changed: new Set(changed), deleted: false, commitTsUs: null, txId: null, ...extra };
}

const base = { name: 'Ada', email: 'ada@example.com', lifecycle_stage: 'lead', phones: ['+111'], status: 'active' };

describe('authority before recency', () => {
  it('rejects a field its system may not write, and applies the rest of the change', () => {
    const r = resolveChange({
      policy: customerPolicy(),
      base,
      incoming: side('app', { ...base, name: 'Ada L.', lifecycle_stage: 'customer' }, ['name', 'lifecycle_stage']),
      local: side('crm', base),
    });
    expect(r.writes).toEqual({ name: 'Ada L.' });
    expect(r.fields).toContainEqual(expect.objectContaining({ field: 'lifecycle_stage', outcome: 'rejected', reason: 'authority' }));
  });

  it('rejects a value that fails validation, field by field', () => {
    const r = resolveChange({
      policy: customerPolicy(),
      base,
      incoming: side('app', { ...base, email: 'not-an-email', name: 'A' }, ['email', 'name']),
      local: side('crm', base),
    });
    expect(r.writes).toEqual({ name: 'A' });
    expect(r.fields).toContainEqual(expect.objectContaining({ field: 'email', outcome: 'rejected', reason: 'validation' }));
  });

  it('refuses a status transition the policy does not allow', () => {
    const r = resolveChange({
      policy: customerPolicy(),
      base: { ...base, status: 'closed' },
      incoming: side('crm', { ...base, status: 'active' }, ['status']),
      local: side('app', { ...base, status: 'closed' }),
    });
    expect(r.action).toBe('none');
    expect(r.fields[0]).toMatchObject({ field: 'status', outcome: 'rejected', reason: 'validation' });
  });

  it('lets only the entity writers delete', () => {
    const policy = customerPolicy();
    const readOnly = { ...policy, default: { ...policy.default, writers: ['app'] } };
    const r = resolveChange({ policy: readOnly, base, incoming: side('crm', null, [], { deleted: true }), local: side('app', base) });
    expect(r).toMatchObject({ action: 'none', fields: [{ field: '*', outcome: 'rejected', reason: 'authority' }] });
  });
});

describe('strategies on concurrent changes of one field', () => {
  const concurrent = (field: string, appValue: unknown, crmValue: unknown, ts: { app?: bigint; crm?: bigint } = {}) => {
    const app = { ...base, [field]: appValue };
    const crm = { ...base, [field]: crmValue };
    return {
      appToCrm: resolveChange({
        policy: customerPolicy(),
        base,
        incoming: side('app', app, [field], { commitTsUs: ts.app ?? null, txId: '10' }),
        local: side('crm', crm, [field], { commitTsUs: ts.crm ?? null, txId: '20' }),
      }),
      crmToApp: resolveChange({
        policy: customerPolicy(),
        base,
        incoming: side('crm', crm, [field], { commitTsUs: ts.crm ?? null, txId: '20' }),
        local: side('app', app, [field], { commitTsUs: ts.app ?? null, txId: '10' }),
      }),
    };
  };

  it('local_wins keeps the owner’s value in both directions', () => {
    const { appToCrm, crmToApp } = concurrent('email', 'a@app.io', 'c@crm.io');
    expect(appToCrm.writes).toEqual({ email: 'a@app.io' });
    expect(crmToApp.writes).toEqual({});
  });

  it('external_wins takes the non-owner’s value in both directions', () => {
    const { appToCrm, crmToApp } = concurrent('lifecycle_stage', 'customer', 'churned');
    // app may not write lifecycle_stage at all: the CRM's value stands either way.
    expect(appToCrm.writes).toEqual({});
    expect(crmToApp.writes).toEqual({ lifecycle_stage: 'churned' });
  });

  it('latest_valid_change takes the later commit, whatever order the changes arrive in', () => {
    const { appToCrm, crmToApp } = concurrent('name', 'From app', 'From crm', { app: 2000n, crm: 1000n });
    expect(appToCrm.writes).toEqual({ name: 'From app' });
    expect(crmToApp.writes).toEqual({});
  });

  it('latest_valid_change passes over an invalid value, even a later one', () => {
    const { appToCrm, crmToApp } = concurrent('name', null, 'From crm', { app: 2000n, crm: 1000n });
    expect(appToCrm.writes).toEqual({});
    expect(crmToApp.writes).toEqual({ name: 'From crm' });
  });

  it('merge combines set-like arrays the same way in both directions', () => {
    const { appToCrm, crmToApp } = concurrent('phones', ['+111', '+222'], ['+333']);
    expect(appToCrm.writes).toEqual({ phones: ['+222', '+333'] });
    expect(crmToApp.writes).toEqual({ phones: ['+222', '+333'] });
  });

  it('merge falls back as configured when values cannot be combined', () => {
    const policy = customerPolicy({ phones: { owner: 'app', writers: ['app', 'crm'], strategy: 'merge', fallback: 'external_wins' } });
    const r = resolveChange({
      policy,
      base: { phones: '1' },
      incoming: side('app', { phones: '2' }, ['phones']),
      local: side('crm', { phones: '3' }, ['phones']),
    });
    expect(r.writes).toEqual({});
    expect(r.fields[0]).toMatchObject({ outcome: 'conflict', winner: 'local' });
  });

  it('manual_review keeps the owner’s value and names the same proposal from both sides', () => {
    const { appToCrm, crmToApp } = concurrent('status', 'paused', 'closed');
    expect(appToCrm.writes).toEqual({ status: 'paused' });
    expect(crmToApp.writes).toEqual({});
    for (const r of [appToCrm, crmToApp])
      expect(r.fields[0]).toMatchObject({ outcome: 'review', owner: 'app', proposer: 'crm', proposed: 'closed', proposerTxId: '20' });
  });
});

describe('deletes', () => {
  it('a delete against a concurrent change is decided by the entity default, the same both ways', () => {
    const policy = customerPolicy();
    const appDeletes = resolveChange({
      policy,
      base,
      incoming: side('app', null, [], { deleted: true, commitTsUs: 5n }),
      local: side('crm', { ...base, name: 'X' }, ['name'], { commitTsUs: 9n }),
    });
    const crmEdits = resolveChange({
      policy,
      base,
      incoming: side('crm', { ...base, name: 'X' }, ['name'], { commitTsUs: 9n }),
      local: side('app', null, [], { deleted: true, commitTsUs: 5n }),
    });
    // The edit is later: the record stays, and comes back where it was deleted — with the app-owned
    // email the CRM may not set taken from the last agreed values.
    expect(appDeletes.action).toBe('none');
    expect(crmEdits.action).toBe('upsert');
    expect(crmEdits.writes).toMatchObject({ name: 'X', email: base.email });
    expect(appDeletes.restoreInSource).toBe(true);
  });

  it('in a bidirectional sync the kept record goes back only through the flow that reads the delete', () => {
    const policy = customerPolicy();
    const r = resolveChange({
      policy,
      base,
      peerRestoresKeptRows: true,
      incoming: side('crm', { ...base, name: 'X' }, ['name']),
      local: side('app', null, [], { deleted: true }),
    });
    expect(r).toMatchObject({ action: 'none', writes: {}, fields: [{ field: '*', outcome: 'conflict', value: 'kept' }] });
  });
});

describe('convergence', () => {
  const fields = ['name', 'email', 'lifecycle_stage', 'phones', 'status'] as const;
  const valueFor = (f: string): fc.Arbitrary<unknown> =>
    ({
      name: fc.constantFrom('A', 'B', 'C'),
      email: fc.constantFrom('x@a.io', 'y@b.io', 'bad'),
      lifecycle_stage: fc.constantFrom('lead', 'customer', 'churned'),
      phones: fc.uniqueArray(fc.constantFrom('+1', '+2', '+3'), { maxLength: 3 }),
      status: fc.constantFrom('active', 'paused', 'closed'),
    })[f]!;
  const edit = fc.record(Object.fromEntries(fields.map((f) => [f, fc.option(valueFor(f), { nil: undefined })])) as Record<string, fc.Arbitrary<unknown>>);

  it('both directions of a sync reach the same record from any two concurrent edits (when each side may make its edit)', () => {
    const policy = customerPolicy();
    fc.assert(
      fc.property(edit, edit, fc.bigInt({ min: 1n, max: 5n }), fc.bigInt({ min: 1n, max: 5n }), (appEdit, crmEdit, tApp, tCrm) => {
        const app: Record<string, unknown> = { ...base };
        const crm: Record<string, unknown> = { ...base };
        const appChanged = Object.keys(appEdit).filter((f) => appEdit[f] !== undefined);
        const crmChanged = Object.keys(crmEdit).filter((f) => crmEdit[f] !== undefined);
        for (const f of appChanged) app[f] = appEdit[f];
        for (const f of crmChanged) crm[f] = crmEdit[f];
        const a = side('app', app, appChanged, { commitTsUs: tApp, txId: '1' });
        const c = side('crm', crm, crmChanged, { commitTsUs: tCrm, txId: '2' });
        const intoCrm = resolveChange({ policy, base, incoming: a, local: c });
        const intoApp = resolveChange({ policy, base, incoming: c, local: a });
        // A change the receiving side rejects stays only where it was made; that is the one divergence allowed.
        const rejected = new Set([...intoCrm.fields, ...intoApp.fields].filter((o) => o.outcome === 'rejected').map((o) => o.field));
        const crmAfter = { ...crm, ...intoCrm.writes };
        const appAfter = { ...app, ...intoApp.writes };
        for (const f of fields) if (!rejected.has(f)) expect([f, appAfter[f]]).toEqual([f, crmAfter[f]]);
      }),
    );
  });
});

describe('policies are checked at start', () => {
  const check = (doc: unknown, columns?: string[]) => compilePolicies(policiesSpec.parse(doc), ['app', 'crm'], () => columns, new Map()).problems;

  it('names an unknown system, an unknown field and a strategy missing what it needs', () => {
    const problems = check(
      {
        customers: {
          default: { owner: 'app', strategy: 'latest_valid_change' },
          fields: { emial: { owner: 'erp', strategy: 'merge' } },
        },
      },
      ['id', 'email'],
    );
    expect(problems).toEqual([
      'policies.customers.default: strategy latest_valid_change needs validators — add at least one (e.g. { required: true }) so "valid" means something',
      'policies.customers.fields.emial: unknown field — customers has id, email',
      'policies.customers.fields.emial.owner: unknown system erp — this flow connects app, crm',
      'policies.customers.fields.emial: strategy merge needs a fallback for values that cannot be combined — add fallback: local_wins (or another strategy)',
    ]);
  });

  it('accepts every strategy with what it needs', () => {
    for (const strategy of STRATEGIES) {
      expect(
        check({ c: { default: { owner: 'app', strategy, fallback: strategy === 'merge' ? 'local_wins' : undefined, validators: [{ required: true }] } } }),
      ).toEqual([]);
    }
  });
});
