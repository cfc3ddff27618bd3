import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TrustsyncError } from '../model/errors.js';

/** One numbered change to trustsync's own tables in a destination: applied once, never edited once released. */
export interface Migration {
  id: number;
  name: string;
  sql: string;
}

/** A sink kind's migrations/ folder in the sources: dist/ holds only the compiled JavaScript. */
export function migrationsDir(kind: string): string {
  const here = dirname(fileURLToPath(import.meta.url));
  return here.includes(join('dist', 'src')) ? resolve(here, `../../../src/sink/${kind}/migrations`) : join(here, kind, 'migrations');
}

/** `NNNN-name.sql`, in order. */
export function readMigrations(dir: string): Migration[] {
  return readdirSync(dir)
    .filter((f) => /^\d{4}-[\w-]+\.sql$/.test(f))
    .sort()
    .map((f) => ({ id: Number(f.slice(0, 4)), name: f.slice(5, -4), sql: readFileSync(join(dir, f), 'utf8') }));
}

/** Stops when the database holds a migration this trustsync does not know: a newer trustsync migrated it. */
export function refuseNewerDatabase(done: Iterable<number>, known: readonly Migration[]): void {
  const newest = Math.max(0, ...known.map((m) => m.id));
  const ahead = [...done].filter((id) => id > newest);
  if (ahead.length)
    throw new TrustsyncError(
      'database-newer',
      `the database's trustsync tables were migrated by a newer trustsync (migration ${Math.max(...ahead)}; this one knows up to ${newest})`,
      false,
      { fix: 'run the trustsync version that migrated it, or a newer one' },
    );
}
