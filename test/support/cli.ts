import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { join } from 'node:path';
import { PACKAGE_DIR } from '../../src/stack/settings.js';

/** The built `trustsync` command as a person runs it, with extra environment; its output as text. */
export function trustsync(args: string[], env: Record<string, string> = {}): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, [join(PACKAGE_DIR, 'bin', 'trustsync.js'), ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 180_000 });
}
