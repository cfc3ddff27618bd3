import { describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { PACKAGE_DIR } from '../../src/stack/settings.js';

/**
 * The Dockerfile's build stage, run as CI can run it (no Docker here): deploy/runner-files.sh on a
 * clean copy of the repository's files builds what the image holds, and that alone runs the CLI.
 */
describe("the image's build steps", () => {
  it('build a runner tree with production dependencies only that runs `trustsync`', () => {
    const work = mkdtempSync(join(tmpdir(), 'trustsync-image-'));
    const src = join(work, 'src-tree');
    const files = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard'], { cwd: PACKAGE_DIR, encoding: 'utf8' })
      .split('\n')
      .filter(Boolean);
    for (const f of files) {
      if (!existsSync(join(PACKAGE_DIR, f))) continue; // deleted in the working tree
      mkdirSync(dirname(join(src, f)), { recursive: true });
      cpSync(join(PACKAGE_DIR, f), join(src, f));
    }
    const out = join(work, 'runner');
    const build = spawnSync('sh', ['deploy/runner-files.sh', out], { cwd: src, encoding: 'utf8' });
    expect(build.status, build.stderr.slice(-2000)).toBe(0);

    const cli = (...args: string[]) => spawnSync(process.execPath, [join(out, 'bin', 'trustsync.js'), ...args], { cwd: work, encoding: 'utf8' });
    const help = cli('--help');
    expect(help.status, help.stderr).toBe(0);
    expect(help.stdout).toContain('run');
    // A flow file it cannot read: one line naming it, exit 2, from the runner tree alone.
    const missing = cli('run', '--config', '/config/flow.yaml');
    expect(missing.status).toBe(2);
    expect(missing.stderr).toContain('/config/flow.yaml');
    // What migrations read at run time is there; what only development needs is not.
    expect(existsSync(join(out, 'src', 'sink', 'postgres', 'migrations', '0001-ledger-and-history.sql'))).toBe(true);
    expect(existsSync(join(out, 'src', 'sink', 'mariadb', 'migrations', '0001-ledger-and-history.sql'))).toBe(true);
    expect(existsSync(join(out, 'node_modules', 'kafkajs'))).toBe(true);
    expect(existsSync(join(out, 'node_modules', 'vitest'))).toBe(false);
    expect(existsSync(join(out, 'node_modules', 'typescript'))).toBe(false);
  }, 600_000);
});
