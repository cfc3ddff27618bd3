import { ConfigError } from '../model/errors.js';

/** A `${NAME}` in a file that has neither a value in the environment nor a default. */
export class VariableMissing extends ConfigError {
  override name = 'VariableMissing';
  constructor(
    readonly origin: string,
    readonly variable: string,
  ) {
    super('variable-missing', `${origin}: \${${variable}} has no value.`, `export ${variable}=<value>, or write \${${variable}:-<default>} in the file.`);
  }
}

const VARIABLE = /\$\{([A-Z0-9_]+)(?::-([^}]*))?\}/g;

/** Replaces `${NAME}` and `${NAME:-default}` from `vars`. */
export function substitute(text: string, vars: Record<string, string | undefined>, origin: string): string {
  return text.replace(VARIABLE, (_, name: string, fallback: string | undefined) => {
    const value = vars[name] ?? fallback;
    if (value === undefined) throw new VariableMissing(origin, name);
    return value;
  });
}
