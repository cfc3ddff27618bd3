import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { StackSettings } from './settings.js';
import { componentFiles, jvmMarker, type Component, type Health } from './component.js';
import { startDetached } from './processes.js';
import { javaCommand, jvmArgs, writeLog4j2Config } from './java.js';

/** Connector classes the stack must offer: the CDC source and the peer sink we compare against. */
export const REQUIRED_PLUGINS = ['io.debezium.connector.postgresql.PostgresConnector', 'io.debezium.connector.jdbc.JdbcSinkConnector'];

function workerProperties(s: StackSettings, pluginsDir: string): string {
  return [
    "# Kafka Connect, distributed mode, for trustsync's local stack (written by `trustsync stack up`).",
    `bootstrap.servers=${s.host}:${s.ports.kafka}`,
    'group.id=trustsync-connect',
    'key.converter=org.apache.kafka.connect.json.JsonConverter',
    'value.converter=org.apache.kafka.connect.json.JsonConverter',
    'config.storage.topic=_trustsync_connect_configs',
    'offset.storage.topic=_trustsync_connect_offsets',
    'status.storage.topic=_trustsync_connect_status',
    'config.storage.replication.factor=1',
    'offset.storage.replication.factor=1',
    'status.storage.replication.factor=1',
    'offset.flush.interval.ms=1000',
    `listeners=http://${s.host}:${s.ports.connect}`,
    `rest.advertised.host.name=${s.host}`,
    `rest.advertised.port=${s.ports.connect}`,
    `plugin.path=${pluginsDir}`,
    // Connectors may set their own producer settings (Debezium's topic creation, batching).
    'connector.client.config.override.policy=All',
    'topic.creation.enable=true',
    '',
  ].join('\n');
}

interface ConnectRoot {
  version: string;
  commit: string;
}

export const connect: Component = {
  name: 'connect',
  portEnv: 'TRUSTSYNC_CONNECT_PORT',
  port: (s) => s.ports.connect,
  marker: jvmMarker,
  readyTimeoutMs: 180_000,

  async start(s, layout) {
    const files = componentFiles(s, 'connect');
    const config = join(files.dir, 'worker.properties');
    writeFileSync(config, workerProperties(s, layout.pluginsDir));
    const log4j = writeLog4j2Config(files.dir);
    startDetached(
      javaCommand(),
      [
        ...jvmArgs(jvmMarker(s), s.connectHeap, log4j, 'parallel'),
        '-cp',
        join(layout.kafkaLibs, '*'),
        'org.apache.kafka.connect.cli.ConnectDistributed',
        config,
      ],
      files.logFile,
      files.pidFile,
      files.dir,
    );
  },

  async health(s): Promise<Health> {
    const base = `http://${s.host}:${s.ports.connect}`;
    try {
      const root = (await (await fetch(base, { signal: AbortSignal.timeout(3000) })).json()) as ConnectRoot;
      const plugins = (await (await fetch(`${base}/connector-plugins`, { signal: AbortSignal.timeout(5000) })).json()) as { class: string }[];
      const missing = REQUIRED_PLUGINS.filter((p) => !plugins.some((x) => x.class === p));
      if (missing.length) return { healthy: false, version: root.version, detail: `plugins missing: ${missing.join(', ')}` };
      return { healthy: true, version: root.version, detail: `plugins: ${plugins.map((p) => p.class.split('.').pop()).join(', ')}` };
    } catch (err) {
      return { healthy: false, detail: (err as Error).message };
    }
  },
};
