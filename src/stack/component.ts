import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { ArtifactLayout } from './artifacts.js';
import type { ComponentName, StackSettings } from './settings.js';
import { portAnswers, runningPid, stopPid, waitUntil } from './processes.js';
import { StackError } from '../model/errors.js';

export interface Health {
  healthy: boolean;
  version?: string;
  detail: string;
}

export interface ComponentFiles {
  dir: string;
  pidFile: string;
  logFile: string;
}

/** One process of the local stack: how it starts, how we know it is ready, and how it stops. */
export interface Component {
  name: ComponentName;
  port(s: StackSettings): number;
  /** A string on the process's command line that tells our process from a stranger with a recycled PID. */
  marker(s: StackSettings): string;
  /** The environment variable that moves its port, for error messages. */
  portEnv: string;
  /** Spawns the process (detached); `ready` says when it serves. */
  start(s: StackSettings, layout: ArtifactLayout): Promise<void>;
  health(s: StackSettings): Promise<Health>;
  readyTimeoutMs: number;
  /** Idempotent set-up once it serves (databases, …); runs on every `stack up`. */
  afterReady?(s: StackSettings, layout: ArtifactLayout): Promise<void>;
  stop?(s: StackSettings): Promise<boolean>;
  /** Extra data outside the state folder that `--purge` removes. */
  externalDataDirs?(s: StackSettings): string[];
}

export function componentFiles(s: StackSettings, name: ComponentName): ComponentFiles {
  const dir = join(s.stateDir, name);
  mkdirSync(dir, { recursive: true });
  return { dir, pidFile: join(dir, `${name}.pid`), logFile: join(dir, `${name}.log`) };
}

/** A port that answers while our PID file names no live process belongs to someone else. */
export async function assertPortFree(s: StackSettings, c: Component): Promise<void> {
  const port = c.port(s);
  if (await portAnswers(port, s.host)) {
    throw new StackError(
      `port ${port} (${c.name}) is taken by a process trustsync did not start.`,
      `stop that process, or give ${c.name} another port: export ${c.portEnv}=<free port> (the same variable for every trustsync command).`,
    );
  }
}

/** Our running process for the component, if any. */
export function componentPid(s: StackSettings, c: Component): number | undefined {
  return runningPid(componentFiles(s, c.name).pidFile, c.marker(s));
}

/** The JVM system property that marks the stack's Java processes. */
export function jvmMarker(s: StackSettings): string {
  return `-Dtrustsync.stack=${s.stateDir}`;
}

export async function waitReady(s: StackSettings, c: Component): Promise<void> {
  const files = componentFiles(s, c.name);
  let last = 'not checked yet';
  await waitUntil(
    async () => {
      if (componentPid(s, c) === undefined) {
        throw new StackError(`${c.name} exited while starting.`, `read its log: ${files.logFile}`);
      }
      const h = await c.health(s);
      last = h.detail;
      return h.healthy;
    },
    c.readyTimeoutMs,
    () => `${c.name} did not become ready within ${c.readyTimeoutMs / 1000}s (${last}); its log: ${files.logFile}`,
  ).catch((err) => {
    if (err instanceof StackError) throw err;
    throw new StackError((err as Error).message, `read the log named above; \`trustsync stack down\` then \`trustsync stack up\` retries.`);
  });
}

export async function stopComponent(s: StackSettings, c: Component): Promise<boolean> {
  if (c.stop) return c.stop(s);
  return stopPid(componentFiles(s, c.name).pidFile, c.marker(s));
}
