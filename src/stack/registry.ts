import { join } from 'node:path';
import { VERSIONS } from './settings.js';
import { componentFiles, jvmMarker, type Component, type Health } from './component.js';
import { startDetached } from './processes.js';
import { javaCommand, jvmArgs } from './java.js';

/**
 * Apicurio Registry, serving the Confluent-compatible API at /apis/ccompat/v7.
 * It stores schemas in the stack's PostgreSQL, so schema ids survive a restart
 * (Avro records in Kafka name their schema by id; an in-memory registry would orphan them).
 */
export const registry: Component = {
  name: 'registry',
  portEnv: 'TRUSTSYNC_REGISTRY_PORT',
  port: (s) => s.ports.registry,
  marker: jvmMarker,
  readyTimeoutMs: 120_000,

  async start(s, layout) {
    const files = componentFiles(s, 'registry');
    const props: Record<string, string> = {
      'quarkus.http.host': s.host,
      'quarkus.http.port': String(s.ports.registry),
      'quarkus.management.enabled': 'false',
      'apicurio.storage.kind': 'sql',
      'apicurio.storage.sql.kind': 'postgresql',
      'apicurio.datasource.url': `jdbc:postgresql://${s.host}:${s.ports.postgres}/trustsync_registry`,
      'apicurio.datasource.username': 'postgres',
      'apicurio.datasource.password': 'postgres',
      'apicurio.datasource.jdbc.initial-size': '2',
      'apicurio.datasource.jdbc.min-size': '2',
      'apicurio.datasource.jdbc.max-size': '10',
      // Tests and `schemas` clean-up delete subjects; allowed on this local registry.
      'apicurio.rest.deletion.artifact.enabled': 'true',
      'apicurio.rest.deletion.artifact-version.enabled': 'true',
      'apicurio.rest.deletion.group.enabled': 'true',
      'quarkus.log.console.json': 'false',
    };
    const args = [
      ...jvmArgs(jvmMarker(s), s.heap),
      ...Object.entries(props).map(([k, v]) => `-D${k}=${v}`),
      '-jar',
      join(layout.registryDir, `apicurio-registry-app-${VERSIONS.apicurioRegistry}-runner.jar`),
    ];
    startDetached(javaCommand(), args, files.logFile, files.pidFile, files.dir);
  },

  async health(s): Promise<Health> {
    try {
      const res = await fetch(`http://${s.host}:${s.ports.registry}/apis/registry/v3/system/info`, { signal: AbortSignal.timeout(3000) });
      if (!res.ok) return { healthy: false, detail: `system/info answered ${res.status}` };
      const info = (await res.json()) as { version: string };
      const ccompat = await fetch(`http://${s.host}:${s.ports.registry}/apis/ccompat/v7/subjects`, { signal: AbortSignal.timeout(3000) });
      return {
        healthy: ccompat.ok,
        version: info.version,
        detail: ccompat.ok ? 'Confluent-compatible API at /apis/ccompat/v7' : `ccompat answered ${ccompat.status}`,
      };
    } catch (err) {
      return { healthy: false, detail: (err as Error).message };
    }
  },
};
