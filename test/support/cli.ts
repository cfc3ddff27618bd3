import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { PACKAGE_DIR } from '../../src/stack/settings.js';

export interface CliResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * The built `trustsync` command as a person runs it, with extra environment; its output as text.
 * Asynchronous on purpose: while it runs, the test's own clients go on. A blocked event loop would
 * hold a writer's transaction open, and PostgreSQL's replication slot creation (a connector the
 * command starts) waits for every transaction open in the cluster.
 */
export function trustsync(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(PACKAGE_DIR, 'bin', 'trustsync.js'), ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 180_000);
    child.once('error', reject);
    child.once('close', (status, signal) => {
      clearTimeout(timer);
      resolve({ status, signal, stdout, stderr });
    });
  });
}
