import { existsSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Kafka, logLevel } from 'kafkajs';
import { VERSIONS, type StackSettings } from './settings.js';
import { componentFiles, jvmMarker, type Component, type Health } from './component.js';
import { runCommand, startDetached } from './processes.js';
import { javaCommand, jvmArgs, writeLog4j2Config } from './java.js';
import { StackError } from '../model/errors.js';
import { ensureStackCertificates, type StackCertificates } from './tls.js';

/**
 * A Kafka cluster id: 16 random bytes, URL-safe base64 without padding, as `kafka-storage random-uuid`
 * makes. One in 64 starts with '-': it is passed as `--cluster-id=…` so it is never read as an option.
 */
function clusterId(): string {
  return randomBytes(16).toString('base64url');
}

/**
 * The local stack's Kafka user on its SASL_SSL listener, for PLAIN and SCRAM alike: a throwaway
 * broker on loopback, so the secret is fixed and written here.
 */
export const STACK_KAFKA_USER = { username: 'trustsync', password: 'trustsync-stack-secret' } as const;

const SCRAM_MECHANISMS = ['SCRAM-SHA-256', 'SCRAM-SHA-512'];

function serverProperties(s: StackSettings, dataDir: string, tls: StackCertificates): string {
  const { kafka: port, kafkaController: controllerPort, kafkaSasl, kafkaTls } = s.ports;
  const { username, password } = STACK_KAFKA_USER;
  return [
    "# Single-node KRaft cluster for trustsync's local stack (written by `trustsync stack up`).",
    'process.roles=broker,controller',
    'node.id=1',
    `controller.quorum.voters=1@${s.host}:${controllerPort}`,
    // PLAINTEXT for the stack's own clients; SASL_SSL and SSL (a client certificate required) for flows that must secure theirs.
    `listeners=PLAINTEXT://${s.host}:${port},CONTROLLER://${s.host}:${controllerPort},SASL_SSL://${s.host}:${kafkaSasl},SSL://${s.host}:${kafkaTls}`,
    `advertised.listeners=PLAINTEXT://${s.host}:${port},SASL_SSL://${s.host}:${kafkaSasl},SSL://${s.host}:${kafkaTls}`,
    'controller.listener.names=CONTROLLER',
    'inter.broker.listener.name=PLAINTEXT',
    'listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL,SSL:SSL',
    'ssl.keystore.type=PEM',
    `ssl.keystore.location=${tls.serverKeystore}`,
    'ssl.truststore.type=PEM',
    `ssl.truststore.location=${tls.ca}`,
    'listener.name.ssl.ssl.client.auth=required',
    `sasl.enabled.mechanisms=PLAIN,${SCRAM_MECHANISMS.join(',')}`,
    `listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_${username}="${password}";`,
    ...SCRAM_MECHANISMS.map(
      (m) => `listener.name.sasl_ssl.${m.toLowerCase()}.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;`,
    ),
    `log.dirs=${dataDir}`,
    'num.partitions=6',
    'default.replication.factor=1',
    'offsets.topic.replication.factor=1',
    'offsets.topic.num.partitions=12',
    'transaction.state.log.replication.factor=1',
    'transaction.state.log.min.isr=1',
    'transaction.state.log.num.partitions=6',
    'share.coordinator.state.topic.replication.factor=1',
    'share.coordinator.state.topic.min.isr=1',
    'group.initial.rebalance.delay.ms=0',
    'auto.create.topics.enable=true',
    'num.network.threads=2',
    'num.io.threads=4',
    'log.retention.hours=-1',
    'log.cleaner.enable=true',
    '',
  ].join('\n');
}

export const kafka: Component = {
  name: 'kafka',
  portEnv: 'TRUSTSYNC_KAFKA_PORT',
  port: (s) => s.ports.kafka,
  marker: jvmMarker,
  readyTimeoutMs: 90_000,

  async start(s, layout) {
    const files = componentFiles(s, 'kafka');
    const dataDir = join(files.dir, 'data');
    const config = join(files.dir, 'server.properties');
    writeFileSync(config, serverProperties(s, dataDir, await ensureStackCertificates(s)));
    const log4j = writeLog4j2Config(files.dir);
    const classpath = join(layout.kafkaLibs, '*');
    const java = javaCommand();
    if (!existsSync(join(dataDir, 'meta.properties'))) {
      mkdirSync(dataDir, { recursive: true });
      await runCommand(java, [
        ...jvmArgs(jvmMarker(s), '256m', log4j),
        '-cp',
        classpath,
        'kafka.tools.StorageTool',
        'format',
        `--cluster-id=${clusterId()}`,
        '-c',
        config,
      ]).catch((err) => {
        throw new StackError(
          `formatting Kafka's storage in ${dataDir} failed: ${(err as Error).message}`,
          'run `trustsync stack down --purge` and `trustsync stack up` again.',
        );
      });
    }
    startDetached(java, [...jvmArgs(jvmMarker(s), s.heap, log4j), '-cp', classpath, 'kafka.Kafka', config], files.logFile, files.pidFile, files.dir);
  },

  /** The SASL_SSL listener's SCRAM user, made with Kafka's own tool once per cluster (a cluster from before it gets it too). */
  async afterReady(s, layout) {
    const files = componentFiles(s, 'kafka');
    const marker = join(files.dir, 'scram-user');
    if (existsSync(marker)) return;
    // One mechanism a request: the broker refuses to alter a user's credentials twice in one.
    for (const mechanism of SCRAM_MECHANISMS)
      await runCommand(javaCommand(), [
        ...jvmArgs(jvmMarker(s), '256m', writeLog4j2Config(files.dir)),
        '-cp',
        join(layout.kafkaLibs, '*'),
        'kafka.admin.ConfigCommand',
        '--bootstrap-server',
        `${s.host}:${s.ports.kafka}`,
        '--alter',
        '--add-config',
        `${mechanism}=[password=${STACK_KAFKA_USER.password}]`,
        '--entity-type',
        'users',
        '--entity-name',
        STACK_KAFKA_USER.username,
      ]).catch((err) => {
        throw new StackError(
          `creating the SCRAM user of Kafka's SASL_SSL listener failed: ${(err as Error).message}`,
          'run `trustsync stack down --purge` and `trustsync stack up` again.',
        );
      });
    writeFileSync(marker, `${STACK_KAFKA_USER.username}\n`);
  },

  async health(s): Promise<Health> {
    const client = new Kafka({
      clientId: 'trustsync-stack-status',
      brokers: [`${s.host}:${s.ports.kafka}`],
      logLevel: logLevel.NOTHING,
      connectionTimeout: 2000,
      requestTimeout: 5000,
      retry: { retries: 0 },
    });
    const admin = client.admin();
    try {
      await admin.connect();
      const cluster = await admin.describeCluster();
      return {
        healthy: cluster.brokers.length > 0,
        version: VERSIONS.kafka,
        detail: `KRaft, ${cluster.brokers.length} broker, controller ${cluster.controller}`,
      };
    } catch (err) {
      return { healthy: false, detail: (err as Error).message };
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
  },
};
