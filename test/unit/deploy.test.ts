import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import { loadFlowFile } from '../../src/flow/config.js';
import { FlowMetrics, serveMetrics } from '../../src/observe/metrics.js';
import { PACKAGE_DIR } from '../../src/stack/settings.js';

/**
 * The deployable runner, checked where Docker and Kubernetes cannot run: the manifests and the
 * Dockerfile against the CLI's own flags, the flow files they carry, and the paths and ports the
 * metrics server really serves.
 */
const read = (file: string) => readFileSync(join(PACKAGE_DIR, file), 'utf8');
const cliHelp = (...args: string[]) => spawnSync(process.execPath, [join(PACKAGE_DIR, 'bin', 'trustsync.js'), ...args, '--help'], { encoding: 'utf8' });

/** The command line `args` name exists: every --flag is in the subcommand's help. */
function expectCliAccepts(args: readonly string[]): void {
  const help = cliHelp(args[0]!);
  expect(help.status, help.stderr).toBe(0);
  for (const flag of args.filter((a) => a.startsWith('--'))) expect(help.stdout).toContain(flag);
}

describe('the deployable runner', () => {
  const manifests = parseAllDocuments(read('deploy/kubernetes/trustsync.yaml')).map((d) => d.toJS() as Record<string, any>);
  const configMap = manifests.find((m) => m.kind === 'ConfigMap')!;
  const deployment = manifests.find((m) => m.kind === 'Deployment')!;
  const container = deployment.spec.template.spec.containers[0];

  it("Kubernetes: the ConfigMap's flow file is valid, serves metrics beyond loopback on the port the pod, the probes and Prometheus use", () => {
    const file = join(mkdtempSync(join(tmpdir(), 'trustsync-k8s-')), 'flow.yaml');
    writeFileSync(file, configMap.data['flow.yaml']);
    const flow = loadFlowFile(file, { PG_PASSWORD: 'from-the-secret' });
    expect(flow.destinationUrl).toContain('from-the-secret');
    expect(flow.metrics).toMatchObject({ host: '0.0.0.0', port: 9464 });
    const port = container.ports.find((p: { name: string }) => p.name === 'metrics');
    expect(port.containerPort).toBe(flow.metrics!.port);
    expect(deployment.spec.template.metadata.annotations['prometheus.io/port']).toBe(String(flow.metrics!.port));
    expect(container.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'metrics' });
    expect(container.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'metrics' });
    // The secret the flow file names is the one the pod is given.
    expect(container.env.map((e: { name: string }) => e.name)).toEqual(['PG_PASSWORD']);
    expect(container.volumeMounts[0].mountPath).toBe('/config');
    expect(container.args).toEqual(['run', '--config', '/config/flow.yaml']);
    expectCliAccepts(container.args);
  });

  it('Kubernetes: replicas share one consumer group, run as non-root, and have time to drain', () => {
    expect(deployment.spec.replicas).toBeGreaterThan(1);
    expect(parse(configMap.data['flow.yaml']).source.group).toBeUndefined(); // one group per flow: trustsync-<flow>
    expect(deployment.spec.template.spec.securityContext.runAsNonRoot).toBe(true);
    expect(container.securityContext).toMatchObject({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true });
    expect(deployment.spec.template.spec.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(30);
  });

  it('the probes and the healthcheck ask for paths the metrics server serves', async () => {
    const server = await serveMetrics(new FlowMetrics('deploy'), { live: () => true, ready: async () => ({ ready: true, detail: 'ok' }) }, 0, '127.0.0.1');
    try {
      const { port } = server.address() as { port: number };
      for (const path of ['/readyz', '/healthz', '/metrics']) expect((await fetch(`http://127.0.0.1:${port}${path}`)).status).toBe(200);
    } finally {
      server.close();
    }
  });

  it('Dockerfile: not root, the healthcheck on /readyz, the entrypoint the CLI, run --config by default', () => {
    const dockerfile = read('Dockerfile');
    const last = (instruction: string) =>
      dockerfile
        .split('\n')
        .filter((l) => l.startsWith(`${instruction} `))
        .at(-1)
        ?.slice(instruction.length + 1);
    expect(last('USER')).toBe('node');
    expect(last('EXPOSE')).toBe('9464');
    expect(dockerfile).toMatch(/HEALTHCHECK [^\n]*\\\n[^\n]*\/readyz/);
    expect(JSON.parse(last('ENTRYPOINT')!)).toEqual(['node', '/app/bin/trustsync.js']);
    const cmd = JSON.parse(last('CMD')!) as string[];
    expect(cmd).toEqual(['run', '--config', '/config/flow.yaml']);
    expectCliAccepts(cmd);
    // The build stage runs the script CI runs (deploy-runner).
    expect(dockerfile).toContain('RUN sh deploy/runner-files.sh /runner');
  });

  it('docker compose: the runner service runs the demo flow file it mounts', () => {
    const compose = parse(read('docker-compose.yml')) as { services: Record<string, any> };
    const runner = compose.services.trustsync;
    expect(runner.profiles).toEqual(['runner']);
    expect(runner.command).toEqual(['run', '--config', '/config/flows/shop.yaml']);
    expect(runner.volumes).toContain('./flows:/config/flows:ro');
    expectCliAccepts(runner.command);
    expect(loadFlowFile(join(PACKAGE_DIR, 'flows', 'shop.yaml'), {}).flow).toBe('shop');
  });
});
