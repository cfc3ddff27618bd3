import { existsSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Kafka, logLevel } from 'kafkajs';
import { VERSIONS, type StackSettings } from './settings.js';
import { componentFiles, jvmMarker, type Component, type Health } from './component.js';
import { runCommand, startDetached } from './processes.js';
import { javaCommand, jvmArgs, writeLog4j2Config } from './java.js';
import { StackError } from '../model/errors.js';

/**
 * A Kafka cluster id: 16 random bytes, URL-safe base64 without padding, as `kafka-storage random-uuid`
 * makes. One in 64 starts with '-': it is passed as `--cluster-id=…` so it is never read as an option.
 */
function clusterId(): string {
  return randomBytes(16).toString('base64url');
}

function serverProperties(s: StackSettings, dataDir: string): string {
  const { kafka: port, kafkaController: controllerPort } = s.ports;
  return [
    "# Single-node KRaft cluster for trustsync's local stack (written by `trustsync stack up`).",
    'process.roles=broker,controller',
    'node.id=1',
    `controller.quorum.voters=1@${s.host}:${controllerPort}`,
    `listeners=PLAINTEXT://${s.host}:${port},CONTROLLER://${s.host}:${controllerPort}`,
    `advertised.listeners=PLAINTEXT://${s.host}:${port}`,
    'controller.listener.names=CONTROLLER',
    'inter.broker.listener.name=PLAINTEXT',
    'listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT',
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
    writeFileSync(config, serverProperties(s, dataDir));
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
