import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';

/**
 * Dependencies point inward (docs/architecture.md): each folder of src/ may import only the folders
 * listed for it. An import that runs backwards fails here, naming the file and the import.
 */
const MAY_IMPORT: Record<string, readonly string[]> = {
  model: [],
  shared: ['model'],
  kafka: ['model', 'shared'],
  decode: ['model', 'order'],
  order: ['model'],
  policy: ['model'],
  history: ['model', 'order'],
  sink: ['model', 'shared', 'order', 'policy', 'history', 'kafka'],
  observe: ['model', 'history', 'sink', 'kafka'],
  flow: ['model', 'shared', 'kafka', 'decode', 'order', 'policy', 'history', 'sink', 'observe'],
  reconcile: ['model', 'policy', 'history', 'sink', 'flow'],
  stack: ['model', 'shared'],
  demo: ['model', 'shared', 'kafka', 'history', 'sink', 'observe', 'flow', 'reconcile', 'stack'],
  cli: ['model', 'shared', 'kafka', 'history', 'sink', 'observe', 'flow', 'reconcile', 'stack', 'demo'],
};

/** Every .ts file under a folder, as paths from the repository root. */
function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sources(path) : path.endsWith('.ts') ? [relative(process.cwd(), path)] : [];
  });
}

const imports = (file: string) => [...readFileSync(file, 'utf8').matchAll(/^import[^'"]*['"]([^'"]+)['"]/gm)].map((m) => m[1]!);

/** The src/ folder a relative import lands in, or undefined for a package. */
function folderOf(file: string, spec: string): string | undefined {
  if (!spec.startsWith('.')) return undefined;
  return normalize(join(dirname(file), spec)).split('/')[1];
}

const DRIVERS = new Set(['pg', 'pg-copy-streams', 'mariadb']);

describe('the architecture, kept true', () => {
  it('every folder of src/ is placed, and imports only what it may', () => {
    const folders = readdirSync('src').filter((d) => statSync(join('src', d)).isDirectory());
    expect(folders.filter((d) => !(d in MAY_IMPORT))).toEqual([]);
    const backwards: string[] = [];
    for (const file of sources('src')) {
      const own = file.split('/')[1]!;
      for (const spec of imports(file)) {
        const target = folderOf(file, spec);
        if (target && target !== own && !MAY_IMPORT[own]!.includes(target)) backwards.push(`${file} imports ${spec}`);
      }
    }
    expect(backwards).toEqual([]);
  });

  it('the pure folders import no driver and do no I/O', () => {
    for (const file of ['model', 'decode', 'order', 'policy', 'history'].flatMap((d) => sources(join('src', d)))) {
      for (const spec of imports(file))
        expect(DRIVERS.has(spec) || spec.startsWith('node:fs') || spec.startsWith('node:net'), `${file} imports ${spec}`).toBe(false);
    }
  });

  it('the engine imports no database driver and no kind of sink: only the seam', () => {
    const engine = ['src/flow', 'src/history', 'src/observe', 'src/reconcile', 'src/cli'].flatMap(sources);
    const reachesADatabase = (file: string) => imports(file).some((i) => DRIVERS.has(i) || /sink\/(postgres|mariadb)\//.test(i));
    expect(engine.filter(reachesADatabase)).toEqual([]);
  });

  it('each kind of destination is one folder of src/sink that no other kind reaches into, but the control store HTTP keeps in PostgreSQL', () => {
    const kinds = readdirSync('src/sink').filter((d) => statSync(join('src/sink', d)).isDirectory());
    expect(kinds.sort()).toEqual(['http', 'mariadb', 'postgres']);
    // An API cannot keep trustsync's ledger and history: the HTTP kind keeps them in a PostgreSQL database, through the postgres kind.
    const allowed = (kind: string, other: string) => kind === 'http' && other === 'postgres';
    const crossing: string[] = [];
    for (const kind of kinds)
      for (const file of sources(join('src/sink', kind)))
        for (const spec of imports(file)) {
          const other = kinds.find((k) => k !== kind && normalize(join(dirname(file), spec)).startsWith(join('src/sink', k)));
          if (other && !allowed(kind, other)) crossing.push(`${file} imports ${spec}`);
        }
    expect(crossing).toEqual([]);
  });
});
