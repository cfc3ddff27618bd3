import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { ConfigError } from '../model/errors.js';

/**
 * A secret as a flow file names it: an environment variable or a file, never the value itself. It
 * is read only when a connection opens, and never printed.
 */
export const secretRef = z
  .strictObject({ env: z.string().min(1).optional(), file: z.string().min(1).optional() })
  .refine((s) => (s.env === undefined) !== (s.file === undefined), { message: 'name the secret with env (a variable) or file (a path), one of them' });

export type SecretRef = z.infer<typeof secretRef>;

/** A secret's value, from its variable or file; `field` names it in the flow file for the message. */
export function readSecret(ref: SecretRef, field: string): string {
  if (ref.env !== undefined) {
    const value = process.env[ref.env];
    if (value === undefined || value === '')
      throw new ConfigError('missing-secret', `${field}: the environment variable ${ref.env} is not set`, `export ${ref.env} before starting the flow`);
    return value;
  }
  try {
    return readFileSync(ref.file!, 'utf8').trim();
  } catch (err) {
    throw new ConfigError(
      'missing-secret',
      `${field}: ${ref.file} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
      'put the secret in that file',
    );
  }
}
