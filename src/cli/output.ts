import { ConfigError, EXIT_CODES, NETWORK_ERROR_CODES, TrustsyncError } from '../model/errors.js';

/** Progress for people goes to stderr, so stdout stays clean for `--json`. */
export const progress = (line: string) => process.stderr.write(`${line}\n`);

/** A command-line option a person got wrong: one line naming it, and an example. */
export function optionError(message: string, fix: string): ConfigError {
  return new ConfigError('invalid-option', message, fix);
}

const REACH_IT = 'start the server it names, or correct its address in the flow file or options, then try again.';

/**
 * Prints a failure for a person — the problem, and the fix where trustsync knows one — and returns
 * the exit code of its family (EXIT_CODES). Only a failure trustsync did not foresee prints a stack
 * trace, as the defect it is.
 */
export function reportFailure(err: unknown): number {
  if (err instanceof TrustsyncError) {
    const fix = err.fix ?? (err.family === 'unavailable' ? REACH_IT : undefined);
    process.stderr.write(`trustsync: ${err.message}\n${fix ? `  fix: ${fix}\n` : ''}`);
    return EXIT_CODES[err.family];
  }
  const code = (err as { code?: unknown } | null)?.code;
  if (err instanceof Error && typeof code === 'string' && NETWORK_ERROR_CODES.has(code)) {
    process.stderr.write(`trustsync: ${err.message}\n  fix: ${REACH_IT}\n`);
    return EXIT_CODES.unavailable;
  }
  process.stderr.write(`trustsync: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  return EXIT_CODES.internal;
}

export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows
    .map((r) =>
      r
        .map((cell, i) => cell.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}
