import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { openSink, sinkKindFor } from '../../src/sink/kinds.js';

describe('kinds of destination, chosen by the URL', () => {
  it('serves postgres:// and postgresql:// with every capability', () => {
    for (const url of ['postgres://u@127.0.0.1:5432/db', 'postgresql://u@127.0.0.1:5432/db', 'POSTGRES://u@h/db']) {
      expect(sinkKindFor(url)?.kind).toBe('postgres');
    }
    const sink = openSink('postgres://u@127.0.0.1:1/db', { name: 'kinds-test', connections: 1 });
    expect(sink.kind).toBe('postgres');
    expect(sink.capabilities).toEqual({ transactions: true, governance: true, truncate: true, reconcile: true });
    return sink.close();
  });
});

/** Every .ts file under a folder, as paths from the repository root. */
function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sources(path) : path.endsWith('.ts') ? [relative(process.cwd(), path)] : [];
  });
}

const imports = (file: string) => [...readFileSync(file, 'utf8').matchAll(/^import[^'"]*['"]([^'"]+)['"]/gm)].map((m) => m[1]!);
const reachesPostgres = (file: string) =>
  imports(file).some((i) => i === 'pg' || i === 'pg-copy-streams' || i.includes('sink/postgres/') || i.startsWith('./postgres/'));

describe('the engine knows destinations through the seam', () => {
  it('model, decode, order, policy and history import no driver, no sink and nothing above them', () => {
    for (const file of ['src/model', 'src/decode', 'src/order', 'src/policy', 'src/history'].flatMap(sources)) {
      for (const i of imports(file)) {
        expect(i === 'pg' || /\/(sink|flow|cli|observe|reconcile|stack|demo)\//.test(`/${i.replace(/^(\.\.\/)+/, '')}`), `${file} imports ${i}`).toBe(false);
      }
    }
  });

  it('engine files that still reach PostgreSQL directly are exactly the known ones (governance, canaries, reconcile)', () => {
    const engine = ['src/flow', 'src/history', 'src/observe', 'src/reconcile', 'src/cli'].flatMap(sources);
    expect(engine.filter(reachesPostgres).sort()).toEqual(
      [
        'src/flow/apply-records.ts',
        'src/flow/governance.ts',
        'src/flow/review.ts',
        'src/flow/run-flow.ts',
        'src/observe/canary.ts',
        'src/reconcile/reconcile.ts',
        'src/reconcile/row-compare.ts',
      ].sort(),
    );
  });
});
