import { spawn, type SpawnOptions } from 'node:child_process';
import { openSync, closeSync, readFileSync, writeFileSync, rmSync, existsSync } from 'node:fs';
import { createConnection } from 'node:net';
import { TrustsyncError } from '../model/errors.js';

/** Runs a command to completion; rejects with its tail of output when it fails. */
export function runCommand(command: string, args: string[], options: SpawnOptions & { onLine?: (line: string) => void } = {}): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    let pending = '';
    const take = (chunk: Buffer) => {
      const text = chunk.toString();
      output += text;
      if (output.length > 200_000) output = output.slice(-100_000);
      if (options.onLine) {
        pending += text;
        const lines = pending.split('\n');
        pending = lines.pop() ?? '';
        for (const line of lines) options.onLine(line);
      }
    };
    child.stdout?.on('data', take);
    child.stderr?.on('data', take);
    child.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') reject(new CommandNotFound(command));
      else reject(err);
    });
    child.on('close', (code) => {
      if (code === 0) resolvePromise(output);
      else reject(new CommandFailed(command, args, code, output.split('\n').slice(-30).join('\n')));
    });
  });
}

export class CommandNotFound extends TrustsyncError {
  override name = 'CommandNotFound';
  constructor(readonly command: string) {
    super('command-not-found', `${command} was not found on PATH`, false, { family: 'stack' });
  }
}

export class CommandFailed extends TrustsyncError {
  override name = 'CommandFailed';
  constructor(
    readonly command: string,
    readonly args: string[],
    readonly exitCode: number | null,
    readonly outputTail: string,
  ) {
    super('command-failed', `${command} ${args.join(' ')} exited with ${exitCode}:\n${outputTail}`, false, { family: 'stack' });
  }
}

/** Starts a long-running process detached from us, output to a log file, and records its PID. */
export function startDetached(command: string, args: string[], logFile: string, pidFile: string, cwd?: string, env?: NodeJS.ProcessEnv): number {
  const out = openSync(logFile, 'a');
  try {
    const child = spawn(command, args, { cwd, env: env ?? process.env, detached: true, stdio: ['ignore', out, out] });
    if (child.pid === undefined) throw new Error(`could not start ${command}`);
    child.unref();
    writeFileSync(pidFile, `${child.pid}\n`);
    return child.pid;
  } finally {
    closeSync(out);
  }
}

export function readPid(pidFile: string): number | undefined {
  if (!existsSync(pidFile)) return undefined;
  const pid = Number(readFileSync(pidFile, 'utf8').trim());
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * The PID in the file if that process still runs and is ours: after a reboot the number may belong
 * to someone else, so its command line must carry `marker`.
 */
export function runningPid(pidFile: string, marker: string): number | undefined {
  const pid = readPid(pidFile);
  if (pid === undefined || !isAlive(pid)) return undefined;
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(marker) ? pid : undefined;
  } catch {
    return pid; // no /proc: trust the PID file
  }
}

/** SIGTERM, then SIGKILL after the grace period; removes the PID file. */
export async function stopPid(pidFile: string, marker: string, graceMs = 20_000): Promise<boolean> {
  const pid = runningPid(pidFile, marker);
  if (pid === undefined) {
    rmSync(pidFile, { force: true });
    return false;
  }
  signalGroup(pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (isAlive(pid) && Date.now() < deadline) await sleep(200);
  if (isAlive(pid)) signalGroup(pid, 'SIGKILL');
  while (isAlive(pid)) await sleep(100);
  rmSync(pidFile, { force: true });
  return true;
}

/** Detached children lead their own process group: signal the group so helpers go too. */
function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      /* already gone */
    }
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** True when something accepts TCP connections on host:port. */
export function portAnswers(port: number, host = '127.0.0.1', timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolvePromise) => {
    const socket = createConnection({ port, host });
    const done = (ok: boolean) => {
      socket.destroy();
      resolvePromise(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** Polls `check` until it returns true, or fails with the message after the timeout. */
export async function waitUntil(check: () => Promise<boolean>, timeoutMs: number, describe: () => string, intervalMs = 500): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(describe());
    await sleep(intervalMs);
  }
}
