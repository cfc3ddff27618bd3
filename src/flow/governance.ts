import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Logger } from 'pino';
import { compilePolicies, customValidatorRefs, type CustomValidators, type EntityPolicy } from '../policy/policy.js';
import type { Validator } from '../policy/validators.js';
import type { Governance, GovernedDestination } from '../sink/governance.js';
import type { Sink } from '../sink/sink.js';
import { targetName } from '../model/table.js';
import { FlowConfigError, type FlowConfig } from './config.js';

/** A flow's tables under policy, and what deciding for them needs. */
export interface GovernedTables {
  /** The destination under policy; with source.database, trustsync's writes into the source are looked up there (echo suppression). */
  sink: GovernedDestination;
  byTopic: Map<string, Governance>;
  /** The governed destination tables, as schema.table. */
  targets: string[];
}

/** Custom validators are ES modules exporting a function `(value, ctx) => string | null` (compiled TypeScript). */
export async function loadCustomValidators(config: FlowConfig, problems: string[]): Promise<CustomValidators> {
  const loaded = new Map<string, Validator>();
  for (const ref of customValidatorRefs(config.policies!)) {
    const [path, name] = ref.split('#') as [string, string];
    const file = resolve(config.baseDir, path);
    try {
      const mod = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
      if (typeof mod[name] !== 'function') problems.push(`custom validator ${ref}: ${file} has no exported function ${name}`);
      else loaded.set(ref, mod[name] as Validator);
    } catch (err) {
      problems.push(`custom validator ${ref}: ${file} cannot be loaded: ${(err as Error).message}`);
    }
  }
  return loaded;
}

const usesLatest = (p: EntityPolicy) =>
  [p.default, ...p.fields.values()].some((f) => f.strategy === 'latest_valid_change' || f.fallback === 'latest_valid_change');

/**
 * Compiles the flow's policies against what really exists — the destination tables' columns, the
 * custom validators' modules — and prepares trustsync's state beside the data. Every problem is
 * reported at once, before a single change is decided.
 */
export async function prepareGovernance(config: FlowConfig, destination: Sink, log: Logger): Promise<GovernedTables | undefined> {
  const governed = config.tables.filter((t) => t.policy);
  if (governed.length === 0 || !config.policies) return undefined;
  // A kind that keeps authority only (an API) leaves the fields it does not own out of its requests: nothing to decide here.
  if (!destination.capabilities.governance && destination.capabilities.fieldAuthority) return undefined;
  // The flow file was checked against the kind's capabilities; this is the same check, for callers that skip it.
  if (!destination.capabilities.governance || !destination.openGovernance)
    throw new FlowConfigError(`flow ${config.flow}`, [
      `destination.url: a ${destination.kind} destination cannot keep policies — remove the policy from its tables`,
    ]);
  const problems: string[] = [];
  const custom = await loadCustomValidators(config, problems);
  const columns = new Map<string, string[] | undefined>();
  for (const t of governed) columns.set(t.policy!, await destination.columnsOf(t.table));
  const { policies, problems: policyProblems } = compilePolicies(
    config.policies,
    [config.sourceSystem!, config.destinationSystem!],
    (entity) => columns.get(entity),
    custom,
  );
  problems.push(...policyProblems);
  const governedSink = destination.openGovernance({
    name: `trustsync:${config.flow}`,
    flow: config.flow,
    sourceUrl: config.sourceDatabaseUrl,
    onConnectionLost: (err) => log.warn({ err: err.message }, 'source database connection lost'),
  });
  const needsCommitTimes = governed.some((t) => policies.get(t.policy!) && usesLatest(policies.get(t.policy!)!));
  try {
    if (needsCommitTimes && !(await governedSink.tracksCommitTimes()))
      problems.push(
        `latest_valid_change needs the commit time of the destination's own changes: set track_commit_timestamp = on in ${config.destinationSystem}'s PostgreSQL (ALTER SYSTEM SET track_commit_timestamp = on; then restart it)`,
      );
    if (problems.length) throw new FlowConfigError(`flow ${config.flow}`, problems);
    await governedSink.prepare();
  } catch (err) {
    await governedSink.close();
    throw err;
  }
  const byTopic = new Map<string, Governance>();
  for (const t of governed) {
    byTopic.set(t.topic, {
      flow: config.flow,
      policy: policies.get(t.policy!)!,
      sourceSystem: config.sourceSystem!,
      destinationSystem: config.destinationSystem!,
    });
    log.info({ table: targetName(t.table), policy: t.policy, echoSuppression: governedSink.echoSuppression }, 'table under policy');
  }
  return { sink: governedSink, byTopic, targets: governed.map((t) => targetName(t.table)) };
}
