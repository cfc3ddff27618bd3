import { rmSync } from 'node:fs';
import { VERSIONS, benchDestinationSettings, stackEndpoints, type ComponentName, type StackSettings } from './settings.js';
import { ensureArtifacts, artifactsReady, type ArtifactLayout } from './artifacts.js';
import { assertPortFree, componentFiles, componentPid, stopComponent, waitReady, type Component } from './component.js';
import { assertJava } from './java.js';
import { postgres } from './postgres.js';
import { mariadb } from './mariadb.js';
import { registry } from './registry.js';
import { kafka } from './kafka.js';
import { connect } from './connect.js';

const ALL: readonly Component[] = [postgres, mariadb, registry, kafka, connect];

/** What must be up before a component starts. */
const DEPENDS_ON: Record<ComponentName, ComponentName[]> = {
  postgres: [],
  mariadb: [],
  registry: ['postgres'],
  kafka: [],
  connect: ['kafka'],
};

export interface ComponentStatus {
  name: ComponentName;
  state: 'up' | 'down' | 'unhealthy';
  port: number;
  version: string;
  pid?: number;
  log: string;
  detail: string;
}

export interface StackStatus {
  healthy: boolean;
  stateDir: string;
  components: ComponentStatus[];
  endpoints: { kafka: string; registry: string; connect: string; postgres: string; mariadb: string };
}

const expectedVersion: Record<ComponentName, string> = {
  postgres: 'system PostgreSQL',
  mariadb: 'system MariaDB',
  registry: VERSIONS.apicurioRegistry,
  kafka: VERSIONS.kafka,
  connect: `${VERSIONS.kafka} + Debezium ${VERSIONS.debezium}`,
};

async function statusOf(s: StackSettings, c: Component): Promise<ComponentStatus> {
  const files = componentFiles(s, c.name);
  const pid = componentPid(s, c);
  const base = { name: c.name, port: c.port(s), log: files.logFile, version: expectedVersion[c.name] };
  if (pid === undefined) return { ...base, state: 'down', detail: 'not running' };
  const h = await c.health(s);
  const version = c.name === 'connect' && h.version ? `${h.version} + Debezium ${VERSIONS.debezium}` : (h.version ?? base.version);
  return { ...base, pid, version, state: h.healthy ? 'up' : 'unhealthy', detail: h.detail };
}

export async function stackStatus(s: StackSettings): Promise<StackStatus> {
  const components = await Promise.all(ALL.map((c) => statusOf(s, c)));
  const e = stackEndpoints(s);
  return {
    healthy: components.every((c) => c.state === 'up'),
    stateDir: s.stateDir,
    components,
    endpoints: {
      kafka: e.kafkaBrokers.join(','),
      registry: e.registryCcompatUrl,
      connect: e.connectUrl,
      postgres: e.postgresUrl('<database>'),
      mariadb: e.mariadbUrl('<database>'),
    },
  };
}

/**
 * Brings every component up, each as soon as what it depends on is ready.
 * Components already running (by our PID file) are left alone, so `stack up` twice is harmless.
 */
export async function stackUp(s: StackSettings, log: (line: string) => void): Promise<StackStatus> {
  const toStart = ALL.filter((c) => componentPid(s, c) === undefined);
  for (const c of toStart) await assertPortFree(s, c);
  if (toStart.some((c) => c.name !== 'postgres' && c.name !== 'mariadb')) await assertJava();
  if (!artifactsReady(s)) log(`artifacts are fetched once into ${s.artifactsDir}`);
  const layout = await ensureArtifacts(s, log);

  const ready = new Map<ComponentName, Promise<void>>();
  const bringUp = (c: Component): Promise<void> => {
    let p = ready.get(c.name);
    if (!p) {
      p = (async () => {
        await Promise.all(DEPENDS_ON[c.name].map((d) => bringUp(byName(d))));
        await startIfDown(s, c, layout, log);
      })();
      ready.set(c.name, p);
    }
    return p;
  };
  await Promise.all(ALL.map(bringUp));
  return stackStatus(s);
}

/**
 * A PostgreSQL cluster beside the stack's own, started the same way: `s` names its port and state
 * folder, `portEnv` the variable that moves its port. (The benchmark's destination lives in one, as
 * in production, so the source's capture never decodes the destination's writes.)
 */
export async function postgresClusterUp(s: StackSettings, portEnv: string, log: (line: string) => void): Promise<void> {
  const cluster: Component = { ...postgres, portEnv };
  if (componentPid(s, cluster) === undefined) await assertPortFree(s, cluster);
  await startIfDown(s, cluster, await ensureArtifacts(s, log), log);
}

export async function postgresClusterDown(s: StackSettings): Promise<boolean> {
  return stopComponent(s, postgres);
}

async function startIfDown(s: StackSettings, c: Component, layout: ArtifactLayout, log: (line: string) => void): Promise<void> {
  const started = Date.now();
  const running = componentPid(s, c) !== undefined;
  if (!running) {
    log(`starting ${c.name} on ${s.host}:${c.port(s)} …`);
    await c.start(s, layout);
  }
  await waitReady(s, c);
  await c.afterReady?.(s, layout);
  log(running ? `${c.name} already running` : `${c.name} ready (${((Date.now() - started) / 1000).toFixed(1)}s)`);
}

function byName(name: ComponentName): Component {
  return ALL.find((c) => c.name === name)!;
}

/**
 * Stops what we started (by PID), dependants first, and the benchmark's destination cluster if a run
 * left it up (killed before it could stop it); `purge` also removes data, that cluster's included.
 */
export async function stackDown(s: StackSettings, purge: boolean, log: (line: string) => void, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  for (const c of [...ALL].reverse()) {
    if (await stopComponent(s, c)) log(`stopped ${c.name}`);
  }
  // With TRUSTSYNC_PG_DATA the bench does not run (one data folder cannot hold two clusters).
  const benchDestination = env.TRUSTSYNC_PG_DATA ? undefined : benchDestinationSettings(s, env);
  if (benchDestination && (await postgresClusterDown(benchDestination)))
    log(`stopped the bench's destination postgres (port ${benchDestination.ports.postgres})`);
  if (purge) {
    const dataDirs = [...ALL.flatMap((c) => c.externalDataDirs?.(s) ?? []), ...(benchDestination ? postgres.externalDataDirs!(benchDestination) : [])];
    for (const dir of dataDirs) rmSync(dir, { recursive: true, force: true });
    rmSync(s.stateDir, { recursive: true, force: true });
    const outside = dataDirs.filter((dir) => !dir.startsWith(`${s.stateDir}/`));
    log(`removed ${[s.stateDir, ...outside].join(' and ')}`);
  }
}
