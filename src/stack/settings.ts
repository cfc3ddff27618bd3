import { homedir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { StackError } from '../model/errors.js';

/** Pinned versions that are known to work together (Debezium 3.4 is built against Kafka 4.1; Apicurio 3.0 is the last registry line that runs on Java 17). */
export const VERSIONS = {
  kafka: '4.1.1',
  debezium: '3.4.3.Final',
  apicurioRegistry: '3.0.9',
  apicurioConverter: '2.6.13.Final',
} as const;

export type ComponentName = 'postgres' | 'mariadb' | 'registry' | 'kafka' | 'connect';

export interface StackPorts {
  postgres: number;
  mariadb: number;
  registry: number;
  kafka: number;
  kafkaController: number;
  /** The broker's SASL_SSL listener (PLAIN, SCRAM-SHA-256/512 over TLS). */
  kafkaSasl: number;
  /** The broker's SSL listener that asks every client for its certificate (mutual TLS). */
  kafkaTls: number;
  connect: number;
}

export interface StackSettings {
  /** Root of downloaded artifacts (kept across `stack down --purge`). */
  home: string;
  artifactsDir: string;
  /** PIDs, logs and data of the running stack. */
  stateDir: string;
  ports: StackPorts;
  host: '127.0.0.1';
  /** Folder of this package (for the Maven poms shipped with it). */
  packageDir: string;
  /** JVM heap per component: two cores and four JVMs want modest heaps. */
  heap: string;
  /** Kafka Connect's heap: it runs Debezium's capture and, in the bench, the JDBC sink at full load. */
  connectHeap: string;
}

const here = dirname(fileURLToPath(import.meta.url));
/** dist/src/stack or src/stack → package root. */
export const PACKAGE_DIR = resolve(here, here.includes(`${join('dist', 'src')}`) ? '../../..' : '../..');

export function portFromEnv(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 1024 || port > 65535) {
    throw new StackError(`${name}=${raw} is not a usable port.`, `set ${name} to a whole number from 1024 to 65535, or unset it for the default ${fallback}.`);
  }
  return port;
}

export function stackSettings(env: NodeJS.ProcessEnv = process.env): StackSettings {
  const home = resolve(env.TRUSTSYNC_HOME ?? join(homedir(), '.cache', 'trustsync'));
  return {
    home,
    artifactsDir: join(home, 'artifacts'),
    stateDir: resolve(env.TRUSTSYNC_STATE_DIR ?? join(home, 'stack')),
    ports: {
      postgres: portFromEnv(env, 'TRUSTSYNC_PG_PORT', 15432),
      mariadb: portFromEnv(env, 'TRUSTSYNC_MARIADB_PORT', 13306),
      registry: portFromEnv(env, 'TRUSTSYNC_REGISTRY_PORT', 18081),
      kafka: portFromEnv(env, 'TRUSTSYNC_KAFKA_PORT', 19092),
      kafkaController: portFromEnv(env, 'TRUSTSYNC_KAFKA_CONTROLLER_PORT', 19093),
      kafkaSasl: portFromEnv(env, 'TRUSTSYNC_KAFKA_SASL_PORT', 19094),
      kafkaTls: portFromEnv(env, 'TRUSTSYNC_KAFKA_TLS_PORT', 19095),
      connect: portFromEnv(env, 'TRUSTSYNC_CONNECT_PORT', 18083),
    },
    host: '127.0.0.1',
    packageDir: PACKAGE_DIR,
    heap: env.TRUSTSYNC_JVM_HEAP ?? '512m',
    connectHeap: env.TRUSTSYNC_CONNECT_HEAP ?? '1g',
  };
}

/**
 * The benchmark's destination: a PostgreSQL cluster of the stack's settings, on a port (the stack's
 * + 1, `TRUSTSYNC_BENCH_PG_PORT`) and in a state folder of its own. `stack down` stops it too.
 */
export function benchDestinationSettings(s: StackSettings, env: NodeJS.ProcessEnv = process.env): StackSettings {
  return {
    ...s,
    stateDir: join(s.stateDir, 'bench-destination'),
    ports: { ...s.ports, postgres: portFromEnv(env, 'TRUSTSYNC_BENCH_PG_PORT', s.ports.postgres + 1) },
  };
}

/** Addresses clients use to reach the local stack. */
export interface StackEndpoints {
  kafkaBrokers: string[];
  registryUrl: string;
  /** Confluent-compatible API of the registry, for @kafkajs/confluent-schema-registry. */
  registryCcompatUrl: string;
  connectUrl: string;
  postgresUrl: (database: string) => string;
  /** The stack's MariaDB, as root (no password: a throwaway server on loopback). */
  mariadbUrl: (database: string) => string;
}

export function stackEndpoints(s: StackSettings): StackEndpoints {
  return {
    kafkaBrokers: [`${s.host}:${s.ports.kafka}`],
    registryUrl: `http://${s.host}:${s.ports.registry}`,
    registryCcompatUrl: `http://${s.host}:${s.ports.registry}/apis/ccompat/v7`,
    connectUrl: `http://${s.host}:${s.ports.connect}`,
    postgresUrl: (database) => `postgres://postgres@${s.host}:${s.ports.postgres}/${database}`,
    mariadbUrl: (database) => `mariadb://root@${s.host}:${s.ports.mariadb}/${database}`,
  };
}
