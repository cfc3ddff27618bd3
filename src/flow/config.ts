import { kafkaSaslSpec, kafkaTlsSpec, type KafkaConnection } from '../kafka/connection.js';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { parseTableName, targetName, type StateTopicSpec, type TableMapping, type TableName } from '../model/table.js';
import { ConfigError } from '../model/errors.js';
import { substitute } from '../shared/substitute.js';
import { schemeOf, sinkKindFor, supportedSchemes } from '../sink/kinds.js';
import type { SinkKind } from '../sink/sink.js';
import { httpDestinationSpec, httpTableSpec, templateColumns, type HttpSettings } from '../sink/http/settings.js';
import { authorityProblems, fieldAuthority, withholdsFields } from '../sink/http/authority.js';
import { compilePolicies, customValidatorRefs, policiesSpec, type EntityPolicy, type PoliciesSpec } from '../policy/policy.js';
import { parseStateSchema } from './state-topic.js';

const durationPattern = /^(\d+)(ms|s|m|h|d)$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

const duration = z
  .union([z.number().int().nonnegative(), z.string().regex(durationPattern, { message: 'a duration such as 500ms, 30s, 10m, 7d' })])
  .transform((v) => (typeof v === 'number' ? v : Number(durationPattern.exec(v)![1]) * UNIT_MS[durationPattern.exec(v)![2]!]!));

const identifier = z
  .string()
  .min(1)
  .regex(/^[^\0]+$/);

const tableSchema = z.strictObject({
  topic: z.string().min(1, { message: 'name the Kafka topic this table is fed from' }),
  table: z.string().min(1, { message: 'name the destination table as schema.table' }),
  keyColumns: z.array(identifier).min(1).optional(),
  include: z.array(identifier).min(1).optional(),
  exclude: z.array(identifier).optional(),
  rename: z.record(identifier, identifier).default({}),
  createIfMissing: z.boolean().default(true),
  policy: z.string().min(1).optional(),
  /** The captured table at the source, for reconcile: by default the last two parts of the topic name. */
  sourceTable: z
    .string()
    .regex(/^[^.]+\.[^.]+$/, { message: 'schema.table' })
    .optional(),
  state: z
    .strictObject({
      topic: z.string().min(1).optional(),
      schema: z.string().min(1, { message: 'the .avsc file of the state record, relative to the flow file' }),
    })
    .optional(),
  /** For an HTTP destination: the requests this table is written with. */
  http: httpTableSpec.optional(),
});

const systemName = z.string().regex(/^[a-z][a-z0-9_-]*$/, { message: 'a system name of lower-case letters, digits, "_" or "-", e.g. app or crm' });
const postgresUrl = z.string().regex(/^postgres(ql)?:\/\//, { message: 'a postgres:// URL' });

/** A URL of a kind trustsync writes (sink/kinds.ts); the message names the scheme, never the password. */
const destinationUrl = z.string().superRefine((url, ctx) => {
  if (sinkKindFor(url)) return;
  const scheme = schemeOf(url);
  ctx.addIssue({
    code: 'custom',
    message: `${scheme ? `${scheme}//` : 'a URL without a scheme'} is not a destination trustsync writes — use ${supportedSchemes()}`,
  });
});

export const flowSchema = z.strictObject({
  flow: z.string().regex(/^[A-Za-z0-9._-]+$/, { message: 'a flow name of letters, digits, ".", "_" or "-"' }),
  source: z.strictObject({
    brokers: z.array(z.string().regex(/^[^:]+:\d+$/, { message: 'host:port' })).min(1),
    /** TLS to the brokers (a listener of security protocol SSL or SASL_SSL). */
    tls: kafkaTlsSpec.optional(),
    /** SASL on the brokers' listener (SASL_SSL, with tls; SASL_PLAINTEXT without). */
    sasl: kafkaSaslSpec.optional(),
    group: z.string().min(1).optional(),
    decoding: z.enum(['json', 'avro']),
    registryUrl: z.url().optional(),
    fromBeginning: z.boolean().default(true),
    system: systemName.optional(),
    database: postgresUrl.optional(),
  }),
  destination: z.strictObject({
    system: systemName.optional(),
    url: destinationUrl,
    http: httpDestinationSpec.optional(),
    tables: z.array(tableSchema).min(1, { message: 'map at least one topic to a table' }),
  }),
  batch: z
    .strictObject({ maxRows: z.number().int().min(1).max(100_000).default(1000), maxWaitMs: duration.default(200) })
    .default({ maxRows: 1000, maxWaitMs: 200 }),
  retry: z
    .strictObject({
      maxAttempts: z.number().int().min(1).max(1000).default(10),
      initialDelayMs: duration.default(100),
      maxDelayMs: duration.default(30_000),
    })
    .default({ maxAttempts: 10, initialDelayMs: 100, maxDelayMs: 30_000 }),
  dlq: z.strictObject({ topic: z.string().min(1) }).optional(),
  truncate: z.enum(['stop', 'skip', 'apply']).default('stop'),
  tombstoneRetention: duration.default(7 * 86_400_000),
  historyRetention: duration.default(90 * 86_400_000),
  metrics: z
    .strictObject({
      port: z.number().int().min(0).max(65535),
      host: z.string().default('127.0.0.1'),
      // How often the lag gauges are read from the broker, whether or not the flow commits.
      lagInterval: duration.default(15_000),
    })
    .optional(),
  canary: z
    .strictObject({
      sourceTable: z.string().regex(/^[^.]+\.[^.]+$/, { message: 'schema.table of the canary table at the source (captured by the connector)' }),
      table: z.string().regex(/^[^.]+\.[^.]+$/, { message: 'schema.table of the canary table at the destination (mapped in destination.tables)' }),
      interval: duration.optional(),
    })
    .optional(),
  log: z.strictObject({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info') }).default({ level: 'info' }),
  policies: z.union([z.string().min(1), z.record(z.string(), z.unknown())]).optional(),
});

export interface FlowConfig {
  flow: string;
  /** The brokers, and the TLS and SASL that reach them. */
  kafka: KafkaConnection;
  group: string;
  decoding: 'json' | 'avro';
  registryUrl: string | undefined;
  fromBeginning: boolean;
  destinationUrl: string;
  /** The destination kind's own section (destination.http with each table's requests), for its sink. */
  destinationSettings: HttpSettings | undefined;
  tables: TableMapping[];
  batch: { maxRows: number; maxWaitMs: number };
  retry: { maxAttempts: number; initialDelayMs: number; maxDelayMs: number };
  dlqTopic: string;
  truncate: 'stop' | 'skip' | 'apply';
  tombstoneRetentionMs: number;
  /** How long this flow's decision history is kept. */
  historyRetentionMs: number;
  metrics: { port: number; host: string; lagIntervalMs: number } | undefined;
  /** Synthetic records written at the source and timed to the destination; `intervalMs` has `run` write them too. */
  canary: { sourceTable: TableName; table: TableName; intervalMs: number | undefined } | undefined;
  logLevel: string;
  /** Under policy: the systems this flow connects, and the policies of the entities its tables hold. */
  sourceSystem: string | undefined;
  destinationSystem: string | undefined;
  /** The source system's database, where trustsync records its writes into it: enables echo suppression. */
  sourceDatabaseUrl: string | undefined;
  policies: PoliciesSpec | undefined;
  /** Where custom validator modules are looked up from: the flow file's folder. */
  baseDir: string;
}

/** Every problem of a flow file, each with the field's path and what to write instead. */
export class FlowConfigError extends ConfigError {
  override name = 'FlowConfigError';
  constructor(
    readonly file: string,
    readonly problems: string[],
  ) {
    super(
      'invalid-flow',
      `${file} is not a valid flow:\n${problems.map((p) => `  - ${p}`).join('\n')}`,
      'correct the flow file; each line names the field (as a path) and what it should hold.',
    );
  }
}

const HINTS: Record<string, string> = {
  'source.decoding': 'json (Kafka Connect JsonConverter) or avro (Confluent wire format through the registry)',
  'source.registryUrl': 'the Confluent-compatible registry URL, e.g. http://127.0.0.1:18081/apis/ccompat/v7',
  'destination.url': 'postgres://user@host:port/database, mariadb://user@host:port/database, or an API base URL https://host/path',
  truncate: 'stop (default: halt and report), skip, or apply (wipe the destination table too)',
  'source.database': "the source system's database URL, postgres://user@host:port/database (for reconcile, and echo suppression in a bidirectional sync)",
};

/** An Avro record schema (.avsc, JSON) named relative to the flow file. */
function readStateSchema(path: string, file: string, where: string, problems: string[]): { schema: Record<string, unknown>; file: string } | undefined {
  const full = resolve(dirname(file), path);
  let schema: unknown;
  try {
    schema = JSON.parse(readFileSync(full, 'utf8'));
  } catch (err) {
    problems.push(`${where}: ${full} cannot be read as JSON: ${(err as Error).message}`);
    return undefined;
  }
  const { problem } = parseStateSchema(schema);
  if (problem) {
    problems.push(`${where}: ${full}: ${problem}`);
    return undefined;
  }
  return { schema: schema as Record<string, unknown>, file: full };
}

/** Policies inline, or in a YAML file named relative to the flow file; problems come back with their path. */
function readPolicies(value: unknown, file: string, problems: string[]): PoliciesSpec | undefined {
  if (value === undefined) return undefined;
  let doc = value;
  let where = 'policies';
  if (typeof value === 'string') {
    const path = resolve(dirname(file), value);
    where = `policies (${value})`;
    try {
      doc = parseYaml(readFileSync(path, 'utf8'));
    } catch (err) {
      problems.push(`policies: ${path} cannot be read: ${(err as Error).message}`);
      return undefined;
    }
  }
  const parsed = policiesSpec.safeParse(doc, { reportInput: true });
  if (!parsed.success) {
    for (const issue of parsed.error.issues) problems.push(describeIssue({ ...issue, path: [where, ...issue.path] } as z.core.$ZodIssue));
    return undefined;
  }
  return parsed.data;
}

function describeIssue(issue: z.core.$ZodIssue): string {
  const path = issue.path.map(String).join('.') || '(top level)';
  const hint = HINTS[issue.path.filter((p) => typeof p === 'string').join('.')];
  if (issue.code === 'unrecognized_keys')
    return `${path}: unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.join(', ')} — remove or correct the spelling`;
  if (issue.code === 'invalid_type' && issue.input === undefined) return `${path}: missing — add it${hint ? ` (${hint})` : ''}`;
  if (issue.code === 'invalid_type') {
    const given = Array.isArray(issue.input) ? 'a list' : issue.input === null ? 'null' : `${typeof issue.input} ${JSON.stringify(issue.input)?.slice(0, 60)}`;
    return `${path}: ${given} where ${issue.expected === 'array' ? 'a list' : `a ${issue.expected}`} belongs — write it as one${hint ? ` (${hint})` : ''}`;
  }
  return `${path}: ${issue.message}${hint ? ` — expected ${hint}` : ''}`;
}

/** Validates a parsed flow document once, at start; all problems are reported together. */
export function validateFlow(doc: unknown, file: string): FlowConfig {
  const result = flowSchema.safeParse(doc, { reportInput: true });
  const problems = result.success ? [] : result.error.issues.map(describeIssue);
  let policies: PoliciesSpec | undefined;
  let compiled: Map<string, EntityPolicy> | undefined;
  const states = new Map<number, StateTopicSpec>();
  if (result.success) {
    const f = result.data;
    if (f.source.decoding === 'avro' && !f.source.registryUrl)
      problems.push(`source.registryUrl: missing — avro decoding needs ${HINTS['source.registryUrl']}`);
    const topics = new Set<string>();
    f.destination.tables.forEach((t, i) => {
      if (topics.has(t.topic)) problems.push(`destination.tables.${i}.topic: ${t.topic} is mapped twice — one table per topic`);
      topics.add(t.topic);
      if (t.include && t.exclude) problems.push(`destination.tables.${i}: give include or exclude, not both`);
    });
    if (f.canary && !f.source.database) problems.push('source.database: missing — the canary writes its records into the source database');
    if (f.canary && !f.destination.tables.some((t) => t.table === f.canary!.table))
      problems.push(`canary.table: ${f.canary.table} is not a destination table of this flow — map the canary's topic to it under destination.tables`);
    if (f.retry.initialDelayMs > f.retry.maxDelayMs)
      problems.push('retry.initialDelayMs: larger than retry.maxDelayMs — the first delay cannot exceed the cap');
    policies = readPolicies(f.policies, file, problems);
    f.destination.tables.forEach((t, i) => {
      if (!t.state) return;
      const spec = readStateSchema(t.state.schema, file, `destination.tables.${i}.state.schema`, problems);
      if (spec) states.set(i, { topic: t.state.topic ?? `state.${t.table}`, schema: spec.schema, schemaFile: spec.file });
      if (!f.source.registryUrl) problems.push(`source.registryUrl: missing — the state topic of ${t.table} needs ${HINTS['source.registryUrl']}`);
    });
    compiled = checkGovernance(f, policies, problems);
    problems.push(...capabilityProblems(f, sinkKindFor(f.destination.url)!));
    problems.push(...httpProblems(f));
  }
  if (problems.length) throw new FlowConfigError(file, problems);
  const f = result.data!;
  return {
    flow: f.flow,
    kafka: { brokers: f.source.brokers, tls: f.source.tls, sasl: f.source.sasl },
    group: f.source.group ?? `trustsync-${f.flow}`,
    decoding: f.source.decoding,
    registryUrl: f.source.registryUrl,
    fromBeginning: f.source.fromBeginning,
    destinationUrl: f.destination.url,
    destinationSettings: f.destination.http && {
      ...f.destination.http,
      tables: Object.fromEntries(
        f.destination.tables
          .filter((t) => t.http)
          .map((t) => {
            const p = t.policy ? compiled?.get(t.policy) : undefined;
            return [targetName(parseTableName(t.table)), { ...t.http!, authority: p && fieldAuthority(p, f.source.system!, f.destination.system!) }];
          }),
      ),
    },
    tables: f.destination.tables.map((t, i) => ({
      topic: t.topic,
      table: parseTableName(t.table) as TableName,
      keyColumns: t.keyColumns,
      include: t.include,
      exclude: t.exclude,
      rename: t.rename,
      createIfMissing: t.createIfMissing,
      policy: t.policy,
      sourceTable: t.sourceTable ?? t.topic.split('.').slice(-2).join('.'),
      state: states.get(i),
      deliver: t.http?.deliver,
    })),
    batch: f.batch,
    retry: f.retry,
    dlqTopic: f.dlq?.topic ?? `trustsync.dlq.${f.flow}`,
    truncate: f.truncate,
    tombstoneRetentionMs: f.tombstoneRetention,
    historyRetentionMs: f.historyRetention,
    metrics: f.metrics && { port: f.metrics.port, host: f.metrics.host, lagIntervalMs: f.metrics.lagInterval },
    canary: f.canary && { sourceTable: parseTableName(f.canary.sourceTable), table: parseTableName(f.canary.table), intervalMs: f.canary.interval },
    logLevel: f.log.level,
    sourceSystem: f.source.system,
    destinationSystem: f.destination.system,
    sourceDatabaseUrl: f.source.database,
    policies,
    baseDir: dirname(resolve(file)),
  };
}

/** Tables under policy need both systems named, and policies that exist and make sense for them. */
/**
 * What the flow asks of its destination that the destination's kind cannot do, each with the field
 * and the fix.
 */
export function capabilityProblems(
  f: Pick<z.infer<typeof flowSchema>, 'destination' | 'truncate'> & { canary?: unknown },
  kind: Pick<SinkKind, 'kind' | 'capabilities'>,
): string[] {
  const problems: string[] = [];
  const can = kind.capabilities;
  f.destination.tables.forEach((t, i) => {
    if (t.policy && !can.governance && !can.fieldAuthority)
      problems.push(
        `destination.tables.${i}.policy: a ${kind.kind} destination cannot keep field-level policies — remove the policy, or write ${t.table} to a PostgreSQL destination`,
      );
    if (t.state && !can.reconcile)
      problems.push(`destination.tables.${i}.state: a ${kind.kind} destination cannot be read back for a state topic — remove the state topic`);
  });
  if (f.canary && !can.reconcile) problems.push(`canary: a ${kind.kind} destination cannot be read back to see a canary arrive — remove the canary`);
  if (f.truncate === 'apply' && !can.truncate) problems.push(`truncate: a ${kind.kind} destination cannot apply a TRUNCATE — use stop or skip`);
  return problems;
}

/** An HTTP destination needs its section and each table's requests; any other kind takes neither. */
function httpProblems(f: z.infer<typeof flowSchema>): string[] {
  const problems: string[] = [];
  const http = sinkKindFor(f.destination.url)!.kind === 'http';
  if (http && !f.destination.http)
    problems.push(
      'destination.http: missing — an HTTP destination needs control (a postgres:// URL for its ledger and history), and optionally auth and limits',
    );
  if (!http && f.destination.http) problems.push(`destination.http: only for an HTTP destination (destination.url is not http:// or https://) — remove it`);
  f.destination.tables.forEach((t, i) => {
    if (http && !t.http)
      problems.push(`destination.tables.${i}.http: missing — name the upsert request of ${t.table}, e.g. { upsert: { method: PUT, path: /customers/{id} } }`);
    if (!http && t.http) problems.push(`destination.tables.${i}.http: only for an HTTP destination — remove it`);
    if (t.http?.upsert.method === 'DELETE') problems.push(`destination.tables.${i}.http.upsert.method: DELETE cannot upsert — use PUT, POST or PATCH`);
    for (const [where, request] of [
      ['upsert', t.http?.upsert],
      ['delete', t.http?.delete],
    ] as const)
      for (const column of request ? templateColumns(request.path) : [])
        if (t.include && !t.include.includes(column) && !Object.values(t.rename).includes(column))
          problems.push(`destination.tables.${i}.http.${where}.path: {${column}} is not among the included columns — include it or change the path`);
  });
  return problems;
}

/** Returns the policies compiled for the flow's two systems, when there are any to compile. */
function checkGovernance(f: z.infer<typeof flowSchema>, policies: PoliciesSpec | undefined, problems: string[]): Map<string, EntityPolicy> | undefined {
  const governed = f.destination.tables.filter((t) => t.policy);
  if (governed.length === 0) return undefined;
  if (!f.source.system) problems.push('source.system: missing — tables under a policy need the name of the system this flow reads from (e.g. app)');
  if (!f.destination.system) problems.push('destination.system: missing — tables under a policy need the name of the system this flow writes into (e.g. crm)');
  if (f.source.system && f.source.system === f.destination.system)
    problems.push(`destination.system: ${f.destination.system} is also the source — a flow connects two different systems`);
  // A TRUNCATE carries no key and no vector: applied, it would delete fields the destination owns.
  if (f.truncate === 'apply')
    problems.push(
      `truncate: apply wipes whole tables, and ${governed.map((t) => t.table).join(', ')} ${governed.length > 1 ? 'are' : 'is'} under a policy that gives fields to the destination — use stop (the default) or skip`,
    );
  // Policies that did not parse are reported already; naming each table's policy missing would only add noise.
  if (f.policies !== undefined && !policies) return;
  f.destination.tables.forEach((t, i) => {
    if (t.policy && !policies?.[t.policy])
      problems.push(
        `destination.tables.${i}.policy: no policy named ${t.policy} — define it under policies${policies ? ` (defined: ${Object.keys(policies).join(', ') || 'none'})` : ''}`,
      );
  });
  if (!policies || !f.source.system || !f.destination.system) return;
  // Custom validators are loaded when the flow starts; here only their references are checked.
  const placeholders = new Map(customValidatorRefs(policies).map((ref) => [ref, () => null]));
  const compiled = compilePolicies(policies, [f.source.system, f.destination.system], () => undefined, placeholders);
  problems.push(...compiled.problems);
  // A kind that keeps authority only (an API): what the policies ask beyond it, and a body that must not replace the record.
  const can = sinkKindFor(f.destination.url)!.capabilities;
  if (can.governance || !can.fieldAuthority) return compiled.policies;
  for (const name of new Set(governed.map((t) => t.policy!))) {
    const p = compiled.policies.get(name);
    if (p) problems.push(...authorityProblems(p, f.source.system));
  }
  f.destination.tables.forEach((t, i) => {
    const p = t.policy ? compiled.policies.get(t.policy) : undefined;
    if (!p || !t.http || t.http.upsert.method === 'PATCH') return;
    const a = fieldAuthority(p, f.source.system!, f.destination.system!);
    if (withholdsFields(a))
      problems.push(
        `destination.tables.${i}.http.upsert.method: ${t.http.upsert.method} replaces the whole record, and policy ${t.policy} leaves fields to ${a.keeper} — use PATCH, so that they are never overwritten`,
      );
  });
  return compiled.policies;
}

/** Reads a YAML or JSON flow file; `${VAR}` / `${VAR:-default}` come from the environment. */
export function loadFlowFile(file: string, env: Record<string, string | undefined> = process.env): FlowConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new FlowConfigError(file, [`cannot be read: ${(err as Error).message}`]);
  }
  let doc: unknown;
  try {
    doc = parseYaml(substitute(text, env, file));
  } catch (err) {
    throw new FlowConfigError(file, [(err as Error).message]);
  }
  return validateFlow(doc, file);
}
