import type { EntityPolicy, FieldPolicy } from '../../policy/policy.js';

/**
 * What a table's policy lets trustsync send to an API: the fields the source system may write,
 * and whether its deletes. The API cannot be read for its current values, so a governed HTTP
 * table gets authority only — a field has one writer, and no conflict is ever decided: a field
 * the API owns is left out of every body (a PATCH), so it is never overwritten.
 */
export interface FieldAuthority {
  entity: string;
  /** The system that keeps what is not sent: the destination. */
  keeper: string;
  /** Fields the policy names, and whether each is sent. */
  fields: Record<string, boolean>;
  /** Whether the fields the policy does not name are sent (its default). */
  others: boolean;
}

const writes = (p: FieldPolicy, system: string) => p.writers.includes(system);

export function fieldAuthority(p: EntityPolicy, source: string, destination: string): FieldAuthority {
  return {
    entity: p.entity,
    keeper: destination,
    fields: Object.fromEntries([...p.fields.values()].map((f) => [f.field, writes(f, source)])),
    others: writes(p.default, source),
  };
}

/** Whether a source delete is sent: the record is the source's to delete when the policy's default lets it write. */
export function sendsDeletes(a: FieldAuthority): boolean {
  return a.others;
}

export function sendsField(a: FieldAuthority, field: string): boolean {
  return a.fields[field] ?? a.others;
}

/** Whether any field is kept from the API's requests: then only a PATCH leaves it as the API holds it. */
export function withholdsFields(a: FieldAuthority): boolean {
  return !a.others || Object.values(a.fields).includes(false);
}

/**
 * What a policy asks that authority alone cannot give: a field two systems may write (deciding
 * between them needs the API's value), validators (values are sent as the source holds them), and a
 * policy that gives the source nothing to send. Each names its field and the fix.
 */
export function authorityProblems(p: EntityPolicy, source: string): string[] {
  const problems: string[] = [];
  const at = `policies.${p.entity}`;
  const shared = (f: FieldPolicy) => writes(f, source) && f.owner !== source;
  const checked = (f: FieldPolicy) => writes(f, source) && f.validators.length > 0;
  const sharedProblem = (path: string, f: FieldPolicy) =>
    `${path}: owned by ${f.owner} and written by ${source} too — deciding between them needs the API's current value, which an HTTP destination cannot be read for; make ${source} its owner, or leave ${source} out of its writers`;
  const validatorsProblem = (path: string) =>
    `${path}.validators: an HTTP destination sends values as the source holds them and checks none — remove the validators`;
  if (shared(p.default)) problems.push(sharedProblem(`${at}.default`, p.default));
  if (checked(p.default)) problems.push(validatorsProblem(`${at}.default`));
  for (const f of p.fields.values()) {
    // What a field only inherits from the default was told with the default.
    if (shared(f) && !(shared(p.default) && f.owner === p.default.owner)) problems.push(sharedProblem(`${at}.fields.${f.field}`, f));
    if (checked(f) && f.validators !== p.default.validators) problems.push(validatorsProblem(`${at}.fields.${f.field}`));
  }
  if (!writes(p.default, source) && ![...p.fields.values()].some((f) => writes(f, source)))
    problems.push(`${at}: gives ${source} no field to write — an HTTP table under it would send nothing; give ${source} the fields it owns`);
  return problems;
}
