import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { parse } from 'yaml';
import { FlowMetrics } from '../../src/observe/metrics.js';
import { PACKAGE_DIR } from '../../src/stack/settings.js';

const rulesFile = join(PACKAGE_DIR, 'observability', 'prometheus', 'trustsync-rules.yml');
const dashboardFile = join(PACKAGE_DIR, 'observability', 'grafana', 'trustsync-dashboard.json');

/** Every series name a flow exports (histograms as their _bucket, _sum and _count series). */
async function exportedSeries(): Promise<Set<string>> {
  const metrics = await new FlowMetrics('test').registry.getMetricsAsJSON();
  const names = new Set<string>();
  for (const m of metrics) {
    if (String(m.type) === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(`${m.name}${suffix}`);
    else names.add(m.name);
  }
  return names;
}

const referenced = (expr: string) => [...expr.matchAll(/\btrustsync_[a-z_]+/g)].map((m) => m[0]);

describe('alert rules and dashboard ship with the metrics they use', () => {
  const rules = parse(readFileSync(rulesFile, 'utf8')) as {
    groups: { rules: { alert: string; expr: string; for: string; labels: { severity: string }; annotations: { summary: string } }[] }[];
  };
  const dashboard = JSON.parse(readFileSync(dashboardFile, 'utf8')) as { panels: { title: string; targets: { expr: string }[] }[] };

  it('alerts on growing lag, stalled partitions, dead letters, latency, retries, a destination waited for past the retry budget, waiting reviews, policy rejections, lost canaries, a source slot keeping WAL or idle, a throttling or failing API, and a dead process', () => {
    const alerts = rules.groups.flatMap((g) => g.rules);
    expect(alerts.map((a) => a.alert)).toEqual([
      'TrustsyncConsumerLagGrowing',
      'TrustsyncPartitionStalled',
      'TrustsyncDeadLettersPresent',
      'TrustsyncEndToEndLatencyHigh',
      'TrustsyncRetrying',
      'TrustsyncWaitingForDestination',
      'TrustsyncReviewQueueWaiting',
      'TrustsyncPolicyRejectionsHigh',
      'TrustsyncCanaryNotArriving',
      'TrustsyncSourceSlotRetainingWal',
      'TrustsyncSourceSlotInactive',
      'TrustsyncDestinationThrottling',
      'TrustsyncDestinationFailing',
      'TrustsyncDown',
    ]);
    for (const a of alerts) {
      expect(a.expr.length).toBeGreaterThan(0);
      expect(a.for).toMatch(/^\d+[smh]$/);
      expect(['info', 'warning', 'critical']).toContain(a.labels.severity);
      expect(a.annotations.summary.length).toBeGreaterThan(0);
    }
  });

  it('refers only to series a flow exports', async () => {
    const series = await exportedSeries();
    const exprs = [...rules.groups.flatMap((g) => g.rules.map((r) => r.expr)), ...dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr))];
    const unknown = exprs.flatMap(referenced).filter((name) => !series.has(name));
    expect(unknown).toEqual([]);
    expect(dashboard.panels.length).toBeGreaterThanOrEqual(6);
  });

  // CI installs Debian's prometheus package (.ci/run); elsewhere the check is skipped, and says so.
  const promtoolPresent = !spawnSync('promtool', ['--version']).error;
  it.skipIf(!promtoolPresent && !process.env.CI)('passes promtool check rules, finding every rule the file holds', () => {
    const promtool = spawnSync('promtool', ['check', 'rules', rulesFile], { encoding: 'utf8' });
    expect(promtool.error, 'promtool must be installed where CI runs (Debian: prometheus)').toBeUndefined();
    const rules = (readFileSync(rulesFile, 'utf8').match(/^\s*- alert:/gm) ?? []).length;
    expect(rules).toBeGreaterThan(0);
    expect(promtool.stdout + promtool.stderr).toContain(`SUCCESS: ${rules} rules found`);
    expect(promtool.status).toBe(0);
  });
});

describe('API destination requests', () => {
  it('counts each attempt by method and answer, its retries, throttles and waits, and shows load and pace', async () => {
    const metrics = new FlowMetrics('api');
    metrics.attempted({ method: 'PUT', status: 200, attempt: 1, seconds: 0.02, waitedMs: 0, throttled: false });
    metrics.attempted({ method: 'PUT', status: 429, attempt: 1, seconds: 0.01, waitedMs: 0, throttled: true });
    metrics.attempted({ method: 'PUT', status: 200, attempt: 2, seconds: 0.03, waitedMs: 1500, throttled: false });
    metrics.attempted({ method: 'DELETE', status: 0, attempt: 1, seconds: 5, waitedMs: 0, throttled: false });
    metrics.load(3, 25);
    let text = await metrics.registry.metrics();
    expect(text).toContain('trustsync_destination_requests_total{flow="api",method="PUT",code="200"} 2');
    expect(text).toContain('trustsync_destination_requests_total{flow="api",method="PUT",code="429"} 1');
    expect(text).toContain('trustsync_destination_requests_total{flow="api",method="DELETE",code="none"} 1');
    expect(text).toContain('trustsync_destination_request_seconds_count{flow="api",method="PUT"} 3');
    expect(text).toContain('trustsync_destination_request_retries_total{flow="api"} 1');
    expect(text).toContain('trustsync_destination_throttled_total{flow="api"} 1');
    expect(text).toContain('trustsync_destination_pace_wait_seconds_total{flow="api"} 1.5');
    expect(text).toContain('trustsync_destination_requests_in_flight{flow="api"} 3');
    expect(text).toContain('trustsync_destination_pace_requests_per_second{flow="api"} 25');
    // No limit in force: no pace series, rather than a number that means nothing.
    metrics.load(0, Infinity);
    text = await metrics.registry.metrics();
    expect(text).not.toContain('trustsync_destination_pace_requests_per_second{');
    expect(text).toContain('trustsync_destination_requests_in_flight{flow="api"} 0');
  });
});

describe('decision counts', () => {
  it('every count reaches the scrape and the summaries, however many reads come between', async () => {
    const metrics = new FlowMetrics('counted');
    metrics.count('t1', 'applied', 'u', 3);
    metrics.count('t1', 'applied', 'u');
    metrics.count('t2', 'skipped', 'stale', 2);
    metrics.count('t2', 'skipped', 'stale', 0);
    expect(await metrics.registry.metrics()).toContain('trustsync_events_total{flow="counted",topic="t1",decision="applied",reason="u"} 4');
    metrics.count('t1', 'applied', 'u', 5);
    metrics.count('t1', 'applied', 'c');
    expect(await metrics.total('applied', 'u')).toBe(9);
    expect(await metrics.total('applied')).toBe(10);
    expect(await metrics.total('skipped', 'stale')).toBe(2);
    const text = await metrics.registry.metrics();
    expect(text).toContain('trustsync_events_total{flow="counted",topic="t1",decision="applied",reason="u"} 9');
    expect(text).toContain('trustsync_events_total{flow="counted",topic="t2",decision="skipped",reason="stale"} 2');
  });
});
