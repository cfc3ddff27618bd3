/**
 * Field validators: a value either passes or gets a reason. Built-ins cover the common checks;
 * custom ones are functions a team writes in TypeScript and points the flow file at.
 */
export interface ValidationContext {
  field: string;
  /** The value the record holds now (for transition rules). */
  previous: unknown;
  /** The system proposing the value. */
  system: string;
}

/** Returns null when the value is acceptable, else why not. */
export type Validator = (value: unknown, ctx: ValidationContext) => string | null;

export interface NamedValidator {
  name: string;
  check: Validator;
}

const FORMATS: Record<string, RegExp> = {
  email: /^[^\s@]+@[^\s@]+\.[^\s@]+$/,
  e164: /^\+[1-9]\d{6,14}$/,
  uuid: /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i,
  'iso-date': /^\d{4}-\d{2}-\d{2}$/,
  url: /^https?:\/\/[^\s/$.?#].[^\s]*$/i,
};
export const FORMAT_NAMES = Object.keys(FORMATS);

const show = (v: unknown) => JSON.stringify(v, (_, x) => (typeof x === 'bigint' ? x.toString() : x));

/** Null passes every built-in but `required`: "no value" is a separate rule. */
export function formatValidator(format: string): NamedValidator {
  const re = FORMATS[format]!;
  return {
    name: `format:${format}`,
    check: (v) => (v === null || v === undefined || (typeof v === 'string' && re.test(v)) ? null : `${show(v)} is not a valid ${format}`),
  };
}

export function enumValidator(allowed: readonly unknown[]): NamedValidator {
  // Values reach validators as the destination's text: compare as text, so 3 and "3" are one value.
  const set = new Set(allowed.map(String));
  return { name: 'enum', check: (v) => (v === null || v === undefined || set.has(String(v)) ? null : `${show(v)} is not one of ${[...set].join(', ')}`) };
}

export function patternValidator(pattern: string): NamedValidator {
  const re = new RegExp(pattern);
  return {
    name: `pattern:${pattern}`,
    check: (v) => (v === null || v === undefined || (typeof v === 'string' && re.test(v)) ? null : `${show(v)} does not match /${pattern}/`),
  };
}

export const requiredValidator: NamedValidator = { name: 'required', check: (v) => (v === null || v === undefined ? 'a value is required' : null) };

/**
 * Allowed status transitions: `{ lead: [customer, lost], customer: [churned] }`. A value may always
 * stay as it is; a record without a previous value may start anywhere listed.
 */
export function transitionsValidator(transitions: Readonly<Record<string, readonly string[]>>): NamedValidator {
  return {
    name: 'transitions',
    check: (v, ctx) => {
      if (v === null || v === undefined || ctx.previous === null || ctx.previous === undefined || v === ctx.previous) return null;
      const from = String(ctx.previous);
      const allowed = transitions[from] ?? [];
      return allowed.includes(String(v))
        ? null
        : `${from} → ${String(v)} is not an allowed transition (from ${from}: ${allowed.length ? allowed.join(', ') : 'none'})`;
    },
  };
}

/** The first failing validator's reason, or null. */
export function validate(validators: readonly NamedValidator[], value: unknown, ctx: ValidationContext): string | null {
  for (const v of validators) {
    const reason = v.check(value, ctx);
    if (reason !== null) return `${v.name}: ${reason}`;
  }
  return null;
}
