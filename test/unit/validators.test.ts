import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { enumValidator, formatValidator, patternValidator, requiredValidator, transitionsValidator, validate } from '../../src/policy/validators.js';
import { loadCustomValidators } from '../../src/flow/governance.js';
import { validateFlow } from '../../src/flow/config.js';

const ctx = (previous: unknown = null) => ({ field: 'f', previous, system: 'crm' });

describe('validators', () => {
  it('check formats, and let an absent value through (that is `required`’s job)', () => {
    expect(formatValidator('email').check('ada@example.com', ctx())).toBeNull();
    expect(formatValidator('email').check('ada@', ctx())).toMatch(/not a valid email/);
    expect(formatValidator('e164').check('+442071838750', ctx())).toBeNull();
    expect(formatValidator('e164').check('020 7183 8750', ctx())).not.toBeNull();
    expect(formatValidator('uuid').check(null, ctx())).toBeNull();
    expect(requiredValidator.check(null, ctx())).toBe('a value is required');
  });

  it('compare enums as the destination’s text', () => {
    expect(enumValidator(['lead', 3]).check('3', ctx())).toBeNull();
    expect(enumValidator(['lead', 'customer']).check('prospect', ctx())).toBe('"prospect" is not one of lead, customer');
  });

  it('allow only the listed status transitions, and staying put', () => {
    const t = transitionsValidator({ active: ['paused', 'closed'], paused: ['active'] });
    expect(t.check('paused', ctx('active'))).toBeNull();
    expect(t.check('closed', ctx('closed'))).toBeNull();
    expect(t.check('active', ctx('closed'))).toBe('closed → active is not an allowed transition (from closed: none)');
    expect(t.check('active', ctx(null))).toBeNull();
  });

  it('report the first failing validator by name', () => {
    expect(validate([requiredValidator, patternValidator('^[A-Z]{2}\\d+$')], 'gb123', ctx())).toBe(
      'pattern:^[A-Z]{2}\\d+$: "gb123" does not match /^[A-Z]{2}\\d+$/',
    );
  });

  it('load custom validators from the flow file’s folder, and name a module or export that is missing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'trustsync-validators-'));
    writeFileSync(join(dir, 'vat.mjs'), 'export function isVatNumber(v) { return /^GB\\d{9}$/.test(String(v)) ? null : "not a UK VAT number"; }\n');
    const doc = {
      flow: 'f',
      source: { brokers: ['127.0.0.1:1'], decoding: 'json', system: 'app' },
      destination: { system: 'crm', url: 'postgres://h/db', tables: [{ topic: 't', table: 's.t', policy: 'accounts' }] },
      policies: {
        accounts: {
          default: {
            owner: 'app',
            strategy: 'local_wins',
            validators: [{ custom: './vat.mjs#isVatNumber' }, { custom: './vat.mjs#nope' }, { custom: './gone.mjs#x' }],
          },
        },
      },
    };
    const problems: string[] = [];
    const loaded = await loadCustomValidators(validateFlow(doc, join(dir, 'flow.yaml')), problems);
    expect(loaded.get('./vat.mjs#isVatNumber')!('GB123456789', ctx())).toBeNull();
    expect(loaded.get('./vat.mjs#isVatNumber')!('FR1', ctx())).toBe('not a UK VAT number');
    expect(problems).toHaveLength(2);
    expect(problems[0]).toMatch(/custom validator \.\/vat\.mjs#nope: .*vat\.mjs has no exported function nope/);
    expect(problems[1]).toMatch(/custom validator \.\/gone\.mjs#x: .*gone\.mjs cannot be loaded/);
  });
});
