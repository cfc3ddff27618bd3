import { StackError } from '../stack/errors.js';

/** Progress for people goes to stderr, so stdout stays clean for `--json`. */
export const progress = (line: string) => process.stderr.write(`${line}\n`);

export function reportFailure(err: unknown): void {
  if (err instanceof StackError) {
    process.stderr.write(`trustsync: ${err.problem}\n  fix: ${err.fix}\n`);
  } else if (err instanceof Error && 'fix' in err && typeof (err as { fix: unknown }).fix === 'string') {
    process.stderr.write(`trustsync: ${err.message}\n  fix: ${(err as { fix: string }).fix}\n`);
  } else {
    process.stderr.write(`trustsync: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  }
}

export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}
