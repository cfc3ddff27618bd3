import { z } from 'zod';
import {
  FORMAT_NAMES,
  enumValidator,
  formatValidator,
  patternValidator,
  requiredValidator,
  transitionsValidator,
  type NamedValidator,
  type Validator,
} from './validators.js';

/**
 * Who may change a field and what happens when two systems changed it without seeing each other.
 * "local" is the field's owner (its system of record), "external" any other system allowed to write it.
 */
export const STRATEGIES = ['local_wins', 'external_wins', 'latest_valid_change', 'merge', 'manual_review'] as const;
export type Strategy = (typeof STRATEGIES)[number];
export type FallbackStrategy = Exclude<Strategy, 'merge'>;

export interface FieldPolicy {
  field: string;
  owner: string;
  /** Systems whose changes to the field are accepted; always includes the owner. */
  writers: readonly string[];
  strategy: Strategy;
  /** What `merge` does when the values cannot be combined. */
  fallback: FallbackStrategy | undefined;
  validators: readonly NamedValidator[];
}

export interface EntityPolicy {
  entity: string;
  /** Applies to fields without a policy of their own, and to whole-row decisions (deletes). */
  default: FieldPolicy;
  fields: ReadonlyMap<string, FieldPolicy>;
}

export function fieldPolicy(p: EntityPolicy, field: string): FieldPolicy {
  return p.fields.get(field) ?? { ...p.default, field };
}

const validatorSpec = z.union(
  [
    z.strictObject({ format: z.enum(FORMAT_NAMES as [string, ...string[]]) }),
    z.strictObject({ enum: z.array(z.union([z.string(), z.number(), z.boolean()])).min(1) }),
    z.strictObject({ pattern: z.string().min(1) }),
    z.strictObject({ required: z.literal(true) }),
    z.strictObject({ transitions: z.record(z.string(), z.array(z.string())) }),
    z.strictObject({ custom: z.string().regex(/^[^#]+#[A-Za-z_$][\w$]*$/) }),
  ],
  {
    error: `not a validator — use { format: ${FORMAT_NAMES.join('|')} }, { enum: [...] }, { pattern: REGEX }, { required: true }, { transitions: { from: [to, ...] } } or { custom: ./module.js#exportedFunction }`,
  },
);

const fieldSpec = z.strictObject({
  owner: z.string().min(1).optional(),
  writers: z.array(z.string().min(1)).min(1).optional(),
  strategy: z.enum(STRATEGIES).optional(),
  fallback: z.enum(STRATEGIES).optional(),
  validators: z.array(validatorSpec).optional(),
});

export const entityPolicySpec = z.strictObject({
  default: fieldSpec.extend({ owner: z.string().min(1), strategy: z.enum(STRATEGIES) }),
  fields: z.record(z.string().min(1), fieldSpec).default({}),
});
export const policiesSpec = z.record(z.string().regex(/^[A-Za-z0-9_.-]+$/), entityPolicySpec);
export type PoliciesSpec = z.infer<typeof policiesSpec>;
type FieldSpec = z.infer<typeof fieldSpec>;

/** Custom validators by their `module#export` reference, loaded before policies are compiled. */
export type CustomValidators = ReadonlyMap<string, Validator>;

export function customValidatorRefs(spec: PoliciesSpec): string[] {
  const refs = new Set<string>();
  for (const entity of Object.values(spec)) {
    for (const f of [entity.default, ...Object.values(entity.fields)]) for (const v of f.validators ?? []) if ('custom' in v) refs.add(v.custom);
  }
  return [...refs];
}

function compileValidator(v: z.infer<typeof validatorSpec>, custom: CustomValidators): NamedValidator {
  if ('format' in v) return formatValidator(v.format);
  if ('enum' in v) return enumValidator(v.enum);
  if ('pattern' in v) return patternValidator(v.pattern);
  if ('required' in v) return requiredValidator;
  if ('transitions' in v) return transitionsValidator(v.transitions);
  return { name: `custom:${v.custom}`, check: custom.get(v.custom)! };
}

/**
 * Checks every policy against the systems a flow connects and the fields its tables have, and
 * compiles it. Returns problems (path: what is wrong — what to do) rather than stopping at the first.
 */
export function compilePolicies(
  spec: PoliciesSpec,
  systems: readonly string[],
  fieldsOf: (entity: string) => readonly string[] | undefined,
  custom: CustomValidators,
): { policies: Map<string, EntityPolicy>; problems: string[] } {
  const problems: string[] = [];
  const policies = new Map<string, EntityPolicy>();
  const known = systems.join(', ');
  for (const [entity, e] of Object.entries(spec)) {
    const at = `policies.${entity}`;
    const columns = fieldsOf(entity);
    const compile = (path: string, field: string, f: FieldSpec, base: FieldPolicy | undefined): FieldPolicy => {
      const owner = f.owner ?? base!.owner;
      const strategy = f.strategy ?? base!.strategy;
      const writers = [...new Set([owner, ...(f.writers ?? (f.owner ? [] : (base?.writers ?? [])))])];
      const fallback = (f.fallback ?? (f.strategy ? undefined : base?.fallback)) as FallbackStrategy | undefined;
      const validators = f.validators ? f.validators.map((v) => compileValidator(v, custom)) : (base?.validators ?? []);
      if (!systems.includes(owner)) problems.push(`${path}.owner: unknown system ${owner} — this flow connects ${known}`);
      for (const w of f.writers ?? []) if (!systems.includes(w)) problems.push(`${path}.writers: unknown system ${w} — this flow connects ${known}`);
      if (strategy === 'latest_valid_change' && validators.length === 0) {
        problems.push(`${path}: strategy latest_valid_change needs validators — add at least one (e.g. { required: true }) so "valid" means something`);
      }
      if (strategy === 'merge' && !fallback)
        problems.push(`${path}: strategy merge needs a fallback for values that cannot be combined — add fallback: local_wins (or another strategy)`);
      if (fallback === ('merge' as Strategy))
        problems.push(`${path}.fallback: merge cannot fall back to merge — choose local_wins, external_wins, latest_valid_change or manual_review`);
      if (fallback === 'latest_valid_change' && validators.length === 0)
        problems.push(`${path}: fallback latest_valid_change needs validators — add at least one`);
      return { field, owner, writers, strategy, fallback, validators };
    };
    const def = compile(`${at}.default`, '*', e.default, undefined);
    const fields = new Map<string, FieldPolicy>();
    for (const [name, f] of Object.entries(e.fields)) {
      if (columns && !columns.includes(name)) problems.push(`${at}.fields.${name}: unknown field — ${entity} has ${columns.join(', ')}`);
      fields.set(name, compile(`${at}.fields.${name}`, name, f, def));
    }
    policies.set(entity, { entity, default: def, fields });
  }
  return { policies, problems };
}
