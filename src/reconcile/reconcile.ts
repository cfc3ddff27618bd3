import pg from 'pg';
import type { Logger } from 'pino';
import type { FlowConfig } from '../flow/config.js';
import { prepareGovernance, type GovernedTables } from '../flow/governance.js';
import { fieldPolicy } from '../policy/policy.js';
import { validate } from '../policy/validators.js';
import { fromPgText, type Governance, type GovernedSink } from '../sink/postgres/governed-sink.js';
import { keyStates, PostgresSink, readTableShape, recordHistory } from '../sink/postgres/postgres-sink.js';
import { postgresCanonicalRows } from '../sink/postgres/canonical-sql.js';
import { parseTableName, targetName, type TableMapping, type TableName } from '../model/table.js';
import { keyTextExpr, LEDGER_STATES, qualified, quoteIdent, upsertStatement } from '../sink/postgres/sql.js';
import type { HistoryRow } from '../model/history-row.js';
import { ConfigError, TrustsyncError } from '../model/errors.js';
import { openSink, sinkKindFor } from '../sink/kinds.js';
import type { CanonicalRows, Sink } from '../sink/sink.js';
import { noteRow } from '../history/history.js';

export type RecommendedAction = 'update-destination' | 'update-source' | 'delete-destination' | 'manual-review' | 'ignore';

/** The actions `--repair` writes. */
const REPAIRABLE: ReadonlySet<RecommendedAction> = new Set(['update-destination', 'update-source', 'delete-destination']);

export interface Difference {
  key: string;
  kind: 'missing' | 'extra' | 'field';
  field?: string;
  source?: string | null;
  destination?: string | null;
  recommendedAction: RecommendedAction;
  why: string;
  repaired?: boolean;
}

export interface TableReport {
  source: string;
  destination: string;
  rows: { source: number; destination: number };
  buckets: number;
  mismatchedBuckets: number;
  /** Differences seen in the first pass that were gone (or moving) after the settle time: in flight, not drift. */
  settled: number;
  differences: Difference[];
}

export interface ReconcileOptions {
  buckets: number;
  settleMs: number;
  repair: boolean;
  /** The other direction of a two-way sync: fields are held to their owner's value on both sides, and the source is written through it. */
  reverse?: FlowConfig;
  /** Told what reconcile is doing; awaited, so a caller may act between steps. */
  progress: (line: string) => unknown;
  log: Logger;
}

export class ReconcileError extends TrustsyncError {
  override name = 'ReconcileError';
  constructor(message: string, fix: string) {
    super('reconcile', message, false, { fix });
  }
}

/** Column pairs compared: source name → destination name, as the flow maps them (include, exclude, rename). */
function comparedColumns(m: TableMapping, sourceColumns: string[], destColumns: string[], keyColumns: string[]): { src: string; dst: string }[] {
  return sourceColumns
    .filter((c) => (!m.include || m.include.includes(c)) && !m.exclude?.includes(c))
    .map((c) => ({ src: c, dst: m.rename[c] ?? c }))
    .filter((c) => destColumns.includes(c.dst) && !keyColumns.includes(c.dst));
}

const sourceColumnOf = (pairs: readonly { src: string; dst: string }[], field: string) => pairs.find((p) => p.dst === field)!.src;

/**
 * One side of the comparison: the row's key and compared values, in its own column names. Between
 * two PostgreSQL databases each side digests its rows' own text (`db`); across kinds, the canonical
 * text both produce alike (`canonical`, sink.ts).
 */
type Side = { table: TableName; key: string[]; values: string[] } & ({ db: pg.Pool; canonical?: undefined } | { canonical: CanonicalRows; db?: undefined });

const keyExpr = (s: Side) => keyTextExpr(s.key);
const valuesExpr = (s: Side) => `json_build_array(${s.values.map((c) => `t.${quoteIdent(c)}::text`).join(', ')})::text`;
/** The same bucket for the same key in both databases: from md5 of the key's text, not a version-dependent hash. */
const bucketExpr = (s: Side, n: number) => `((('x' || substr(md5(${keyExpr(s)}), 1, 8))::bit(32)::int & 2147483647) % ${n})`;

/** Rows per bucket read at level 3, at most (about): keeps memory flat whatever the table's size. */
const ROWS_PER_BUCKET = 500;

/** At least the asked-for buckets, more for big tables (from the planner's row estimate), a power of two. */
async function bucketCount(a: Side, b: Side, asked: number): Promise<number> {
  const estimate = async (s: Side) =>
    s.canonical
      ? s.canonical.estimateRows(s.table)
      : Number(
          (await s.db.query<{ n: string }>('SELECT greatest(reltuples, 0)::bigint AS n FROM pg_class WHERE oid = $1::regclass', [qualified(s.table)])).rows[0]
            ?.n ?? 0,
        );
  const rows = Math.max(await estimate(a), await estimate(b));
  const needed = 2 ** Math.ceil(Math.log2(Math.max(1, rows / ROWS_PER_BUCKET)));
  return Math.min(65536, Math.max(asked, needed));
}

/** Level 1 and 2: per bucket, a row count and a digest of the rows' values, computed inside the database. */
async function bucketDigests(s: Side, n: number): Promise<Map<number, { rows: number; digest: string }>> {
  if (s.canonical) return s.canonical.bucketDigests(s.table, s.key, s.values, n);
  const { rows } = await s.db.query<{ b: number; n: string; digest: string }>(
    `SELECT b, count(*) AS n, md5(string_agg(h, '' ORDER BY k)) AS digest
       FROM (SELECT ${keyExpr(s)} AS k, ${bucketExpr(s, n)} AS b, md5(${keyExpr(s)} || ${valuesExpr(s)}) AS h FROM ${qualified(s.table)} t) x
      GROUP BY b`,
  );
  return new Map(rows.map((r) => [Number(r.b), { rows: Number(r.n), digest: r.digest }]));
}

/** Level 3, for mismatching buckets only: the rows, as text. */
async function bucketRows(s: Side, n: number, buckets: number[]): Promise<Map<string, (string | null)[]>> {
  if (buckets.length === 0) return new Map();
  if (s.canonical) return s.canonical.bucketRows(s.table, s.key, s.values, n, buckets);
  const { rows } = await s.db.query<{ k: string; v: (string | null)[] }>(
    `SELECT ${keyExpr(s)} AS k, ARRAY[${s.values.map((c) => `t.${quoteIdent(c)}::text`).join(', ') || 'NULL::text'}] AS v
       FROM ${qualified(s.table)} t WHERE ${bucketExpr(s, n)} = ANY($1::int[])`,
    [buckets],
  );
  return new Map(rows.map((r) => [r.k, r.v]));
}

/** A governed table's writer: its flow's destination under policy, with the table's mapping there. */
interface GovernedTable {
  sink: GovernedSink;
  m: TableMapping;
  g: Governance;
}

/**
 * Keys' states on each side a repair writes, as they were when the differences were found (the
 * ledger's; under policy, the records' states): a key whose state moved since was written by a flow
 * meanwhile, and the repair leaves it alone.
 */
interface SeenStates {
  destination: ReadonlyMap<string, string>;
  source: ReadonlyMap<string, string>;
}

async function statesBeforeRepair(t: TableContext, keys: string[]): Promise<SeenStates> {
  if (!t.governed) return { destination: await keyStates((t.sink as PostgresSink).pool, LEDGER_STATES, targetName(t.m.table), keys), source: new Map() };
  return { destination: await t.governed.sink.rowStates(t.governed.m, keys), source: t.back ? await t.back.sink.rowStates(t.back.m, keys) : new Map() };
}

/** What reconciling one table works with. */
interface TableContext {
  flow: string;
  source: pg.Pool;
  /** A PostgreSQL destination (compared in its own text, repairable), or another kind (compared in canonical text). */
  sink: PostgresSink | Sink;
  m: TableMapping;
  systems: { source: string; destination: string };
  /** Under policy: the destination's writer. */
  governed?: GovernedTable;
  /** A two-way sync: the other direction's writer, whose destination is this table's source. */
  back?: GovernedTable;
}

/**
 * Compares one mapped table with its source as the flow says it should be: counts and digests per
 * bucket, then rows and fields of the mismatching buckets only, then the same again after the settle
 * time — a difference that moved or vanished was in flight, not drift. Each difference gets the action
 * the table's policy allows; with `repair`, those that update the destination or the source or
 * delete from the destination are written (with history).
 */
async function reconcileTable(t: TableContext, o: ReconcileOptions): Promise<TableReport> {
  const { source, sink, m, systems } = t;
  const policy = t.governed?.g.policy;
  const srcName = parseTableName(m.sourceTable!);
  const across = !(sink instanceof PostgresSink);
  const [srcShape, dstShape] = await Promise.all([
    readTableShape(source, srcName),
    sink instanceof PostgresSink ? readTableShape(sink.pool, m.table) : sink.canonical.shape(m.table),
  ]);
  if (!srcShape)
    throw new ReconcileError(
      `source table ${m.sourceTable} not found in the source database`,
      `name it with sourceTable: schema.table for topic ${m.topic} in the flow file`,
    );
  if (!dstShape) throw new ReconcileError(`destination table ${targetName(m.table)} does not exist`, 'run the flow first: it creates the table');
  const keyPairs = dstShape.keyColumns.map((d) => ({ dst: d, src: Object.entries(m.rename).find(([, to]) => to === d)?.[0] ?? d }));
  const pairs = comparedColumns(m, [...srcShape.columns.keys()], [...dstShape.columns.keys()], dstShape.keyColumns);
  const sourceColumn = (field: string) => sourceColumnOf(pairs, field);
  const [srcKey, dstKey] = [keyPairs.map((k) => k.src), keyPairs.map((k) => k.dst)];
  const srcSide: Side = across
    ? { canonical: postgresCanonicalRows(source), table: srcName, key: srcKey, values: pairs.map((p) => p.src) }
    : { db: source, table: srcName, key: srcKey, values: pairs.map((p) => p.src) };
  const dstSide: Side =
    sink instanceof PostgresSink
      ? { db: sink.pool, table: m.table, key: dstKey, values: pairs.map((p) => p.dst) }
      : { canonical: sink.canonical, table: m.table, key: dstKey, values: pairs.map((p) => p.dst) };
  const n = await bucketCount(srcSide, dstSide, o.buckets);

  const compare = async () => {
    const [a, b] = await Promise.all([bucketDigests(srcSide, n), bucketDigests(dstSide, n)]);
    const mismatched = [...new Set([...a.keys(), ...b.keys()])].filter((k) => a.get(k)?.digest !== b.get(k)?.digest || a.get(k)?.rows !== b.get(k)?.rows);
    const count = (d: Map<number, { rows: number }>) => [...d.values()].reduce((x, y) => x + y.rows, 0);
    return { mismatched, rows: { source: count(a), destination: count(b) } };
  };
  const rowDiffs = async (buckets: number[]) => {
    const [a, b] = await Promise.all([bucketRows(srcSide, n, buckets), bucketRows(dstSide, n, buckets)]);
    const diffs: Difference[] = [];
    for (const [key, values] of a) {
      const other = b.get(key);
      if (!other) {
        diffs.push(judge({ key, kind: 'missing' }));
        continue;
      }
      pairs.forEach((p, i) => {
        if (values[i] !== other[i]) diffs.push(judge({ key, kind: 'field', field: p.dst, source: values[i] ?? null, destination: other[i] ?? null }));
      });
    }
    for (const key of b.keys()) if (!a.has(key)) diffs.push(judge({ key, kind: 'extra' }));
    return diffs;
  };
  /**
   * What the policy allows. One way: the source's value, for fields the source may write (the others
   * are the destination's own). Two ways: each field's owner's value, in whichever system lacks it.
   * A value the field's validators refuse is never written, and a field under manual review, like the
   * rows of a sync under policy, goes to a person.
   */
  const judge = (d: Omit<Difference, 'recommendedAction' | 'why'>): Difference => {
    if (d.kind === 'field') {
      const p = policy && fieldPolicy(policy, d.field!);
      if (!p) return { ...d, recommendedAction: 'update-destination', why: 'the destination differs from the source' };
      let action: RecommendedAction;
      let why: string;
      if (t.back) {
        if (p.strategy === 'manual_review')
          return { ...d, recommendedAction: 'manual-review', why: `${d.field} is under manual review: a person chooses the value` };
        action = p.owner === systems.source ? 'update-destination' : 'update-source';
        why = `${d.field} is ${p.owner}'s: ${p.owner === systems.source ? systems.destination : systems.source} should hold ${p.owner}'s value`;
      } else if (!p.writers.includes(systems.source)) {
        return {
          ...d,
          recommendedAction: 'ignore',
          why: `${d.field} is ${p.owner}'s to change; ${systems.source} may not write it (a two-way sync: give --reverse)`,
        };
      } else {
        action = 'update-destination';
        why = 'the destination differs from the source';
      }
      const [from, to] = action === 'update-destination' ? [systems.source, systems.destination] : [systems.destination, systems.source];
      const [text, other] = action === 'update-destination' ? [d.source, d.destination] : [d.destination, d.source];
      const type = action === 'update-destination' ? dstShape.columns.get(d.field!)! : srcShape.columns.get(sourceColumn(d.field!))!;
      const problem = validate(p.validators, fromPgText(text ?? null, type), { field: d.field!, previous: fromPgText(other ?? null, type), system: from });
      if (problem)
        return {
          ...d,
          recommendedAction: 'manual-review',
          why: `${from}'s value fails ${d.field}'s policy (${problem}): it is not written into ${to}; correct it in ${from}`,
        };
      return { ...d, recommendedAction: action, why };
    }
    if (policy)
      return {
        ...d,
        recommendedAction: 'manual-review',
        why: `a record ${d.kind === 'missing' ? 'missing from' : 'only in'} ${systems.destination} may be a deliberate ${d.kind === 'missing' ? 'delete' : 'create'} there, still on its way`,
      };
    return d.kind === 'missing'
      ? { ...d, recommendedAction: 'update-destination', why: 'the source has the row and the destination does not' }
      : { ...d, recommendedAction: 'delete-destination', why: 'the destination has a row the source does not' };
  };

  await o.progress(`${m.sourceTable} → ${targetName(m.table)}: counting and hashing ${n} buckets on both sides …`);
  const first = await compare();
  let differences: Difference[] = [];
  let settled = 0;
  let seen: SeenStates = { destination: new Map(), source: new Map() };
  if (first.mismatched.length) {
    await o.progress(`  ${first.mismatched.length} buckets differ; comparing their rows …`);
    const before = await rowDiffs(first.mismatched);
    if (o.settleMs > 0) {
      await o.progress(`  waiting ${o.settleMs / 1000}s for changes in flight to settle …`);
      await new Promise((r) => setTimeout(r, o.settleMs));
    }
    // For the repair, read before the rows are: a key a flow writes after this moves, and is not repaired.
    if (o.repair) seen = await statesBeforeRepair(t, [...new Set(before.map((d) => d.key))]);
    const after = await rowDiffs(first.mismatched);
    const id = (d: Difference) => JSON.stringify([d.key, d.kind, d.field ?? null, d.source ?? null, d.destination ?? null]);
    const stable = new Set(before.map(id));
    differences = after.filter((d) => stable.has(id(d)));
    settled = before.length - differences.length;
  }
  const repairable = differences.filter((d) => REPAIRABLE.has(d.recommendedAction)).length;
  if (o.repair && repairable) {
    await o.progress(`  repairing ${repairable} differences …`);
    const moved = t.governed
      ? await repairGoverned(t.governed, t.back, srcShape.columns, dstShape.columns, pairs, differences, systems, seen)
      : await repairCopy(source, sink as PostgresSink, m, dstShape.columns, srcSide, dstSide, pairs, differences, t.flow, seen.destination);
    differences = differences.filter((d) => !moved.has(d.key));
    settled += moved.size;
  }
  return {
    source: m.sourceTable!,
    destination: targetName(m.table),
    rows: first.rows,
    buckets: n,
    mismatchedBuckets: first.mismatched.length,
    settled,
    differences,
  };
}

/**
 * Under policy, the fields where their owner's value is missing, through the governed writer of the
 * system that lacks it: write records (so the captures are not sent back), agreed values, history.
 * Returns the keys a flow wrote since `seen`, left to the flows.
 */
async function repairGoverned(
  dest: GovernedTable,
  back: GovernedTable | undefined,
  srcTypes: ReadonlyMap<string, string>,
  dstTypes: ReadonlyMap<string, string>,
  pairs: { src: string; dst: string }[],
  diffs: Difference[],
  systems: { source: string; destination: string },
  seen: SeenStates,
): Promise<Set<string>> {
  const valuesByKey = (action: RecommendedAction, value: (d: Difference) => [string, unknown]) => {
    const byKey = new Map<string, Record<string, unknown>>();
    for (const d of diffs.filter((x) => x.recommendedAction === action && x.kind === 'field')) {
      const [column, v] = value(d);
      byKey.set(d.key, { ...byKey.get(d.key), [column]: v });
    }
    return [...byKey].map(([keyText, values]) => ({ keyText, values }));
  };
  const toDestination = valuesByKey('update-destination', (d) => [d.field!, fromPgText(d.source ?? null, dstTypes.get(d.field!)!)]);
  const moved = new Set<string>();
  const repairIn = async (side: GovernedTable, repairs: typeof toDestination, reason: string, states: ReadonlyMap<string, string>) => {
    if (repairs.length) for (const key of (await side.sink.repairFields(side.m, side.g, repairs, reason, states)).moved) moved.add(key);
  };
  await repairIn(dest, toDestination, `reconcile: ${systems.destination} lacked the owner's (${systems.source}) value`, seen.destination);
  const sourceColumn = (field: string) => sourceColumnOf(pairs, field);
  const toSource = valuesByKey('update-source', (d) => [sourceColumn(d.field!), fromPgText(d.destination ?? null, srcTypes.get(sourceColumn(d.field!))!)]);
  if (back) await repairIn(back, toSource, `reconcile: ${systems.source} lacked the owner's (${systems.destination}) value`, seen.source);
  for (const d of diffs)
    if ((d.recommendedAction === 'update-destination' && d.kind === 'field') || (d.recommendedAction === 'update-source' && back)) d.repaired = true;
  return moved;
}

/**
 * Without policy: the source's rows copied, one transaction per table, each repair on record in the
 * history. Only keys the flow has not written since the difference was found (their ledger state is
 * still `ledgerSeen`'s): a repair never overwrites a change applied meanwhile. Returns the keys that
 * moved, left to the flow.
 */
async function repairCopy(
  source: pg.Pool,
  sink: PostgresSink,
  m: TableMapping,
  typeOf: ReadonlyMap<string, string>,
  srcSide: Side,
  dstSide: Side,
  pairs: { src: string; dst: string }[],
  allDiffs: Difference[],
  flow: string,
  ledgerSeen: ReadonlyMap<string, string>,
): Promise<Set<string>> {
  const target = targetName(m.table);
  const moved = new Set<string>();
  let repaired: Difference[] = [];
  await sink.transaction(`repairing ${target}`, async (client) => {
    // Locked: the flow's next write of these keys waits for this transaction, so the source read
    // below is at least as new as anything the flow applied to them.
    const candidates = allDiffs.filter((d) => REPAIRABLE.has(d.recommendedAction));
    const ledgerNow = await keyStates(client, LEDGER_STATES, target, [...new Set(candidates.map((d) => d.key))], true);
    for (const d of candidates) if (ledgerNow.get(d.key) !== ledgerSeen.get(d.key)) moved.add(d.key);
    const diffs = candidates.filter((d) => !moved.has(d.key));
    const keys = [...new Set(diffs.filter((d) => d.recommendedAction === 'update-destination').map((d) => d.key))];
    const { rows: sourceRows } = await source.query<{ k: string; kv: (string | null)[]; v: (string | null)[] }>(
      `SELECT ${keyExpr(srcSide)} AS k, ARRAY[${srcSide.key.map((c) => `t.${quoteIdent(c)}::text`).join(', ')}] AS kv, ARRAY[${srcSide.values.map((c) => `t.${quoteIdent(c)}::text`).join(', ') || 'NULL::text'}] AS v
         FROM ${qualified(srcSide.table)} t WHERE ${keyExpr(srcSide)} = ANY($1::text[])`,
      [keys],
    );
    const byKey = new Map(sourceRows.map((r) => [r.k, r]));
    const history: HistoryRow[] = [];
    const row = (key: string, op: string, reason: string, values: unknown): HistoryRow =>
      noteRow(target, key, 'repaired', { entity: m.sourceTable!, op, reason, newValues: values });
    for (const key of keys) {
      const r = byKey.get(key);
      if (!r) continue;
      // Only the fields the policy lets the source write (all of them for a missing row).
      const allowed = new Set(diffs.filter((d) => d.key === key && d.recommendedAction === 'update-destination').map((d) => d.field));
      const cols = pairs.map((p, i) => ({ p, i })).filter(({ p }) => allowed.has(undefined) || allowed.has(p.dst));
      if (allowed.has(undefined)) {
        const columns = [...dstSide.key, ...cols.map(({ p }) => p.dst)].map((name) => ({ name, type: typeOf.get(name)! }));
        // A key the ledger never held has no lock to take: should the flow insert it first, its row stays.
        await client.query(
          upsertStatement(m.table, columns, dstSide.key, true),
          [...r.kv, ...cols.map(({ i }) => r.v[i] ?? null)].map((v) => [v]),
        );
      } else {
        // Just the differing fields: an INSERT … ON CONFLICT would check NOT NULL columns it does not set.
        const sets = cols.map(({ p }, j) => `${quoteIdent(p.dst)} = $${j + 2}::text::${typeOf.get(p.dst)!}`);
        await client.query(`UPDATE ${qualified(m.table)} AS t SET ${sets.join(', ')} WHERE ${keyExpr(dstSide)} = $1`, [
          key,
          ...cols.map(({ i }) => r.v[i] ?? null),
        ]);
      }
      history.push(
        row(
          key,
          allowed.has(undefined) ? 'c' : 'u',
          'reconcile: the destination differed from the source',
          Object.fromEntries(cols.map(({ p, i }) => [p.dst, r.v[i] ?? null])),
        ),
      );
    }
    for (const d of diffs.filter((x) => x.recommendedAction === 'delete-destination')) {
      await client.query(`DELETE FROM ${qualified(m.table)} AS t WHERE ${keyExpr(dstSide)} = $1`, [d.key]);
      history.push(row(d.key, 'd', 'reconcile: the source does not have this row', null));
    }
    await recordHistory(client, flow, history);
    repaired = diffs;
  });
  for (const d of repaired) d.repaired = true;
  return moved;
}

/** Reconciles every table of a flow with its source (source.database); with `reverse`, as a two-way sync. */
export async function reconcileFlow(config: FlowConfig, o: ReconcileOptions): Promise<{ tables: TableReport[]; clean: boolean }> {
  if (!config.sourceDatabaseUrl)
    throw new ReconcileError(
      `flow ${config.flow} names no source database`,
      'add source.database: postgres://… (the database Debezium captures) to the flow file',
    );
  const reverse = o.reverse;
  if (reverse && (reverse.sourceSystem !== config.destinationSystem || reverse.destinationSystem !== config.sourceSystem)) {
    throw new ReconcileError(
      `flow ${reverse.flow} (${reverse.sourceSystem ?? '?'} → ${reverse.destinationSystem ?? '?'}) is not the reverse of ${config.flow} (${config.sourceSystem ?? '?'} → ${config.destinationSystem ?? '?'})`,
      'give --reverse the flow file of the other direction of the sync',
    );
  }
  const kind = sinkKindFor(config.destinationUrl)?.kind;
  if (kind !== 'postgres' && (o.repair || reverse))
    throw new ConfigError(
      'reconcile-unsupported',
      `reconcile finds the differences of a ${kind} destination, but does not ${o.repair ? 'repair them' : 'reconcile two ways'} yet`,
      `run it without ${o.repair ? '--repair' : '--reverse'}; mend what it lists by hand, or re-snapshot the source (trustsync connectors resnapshot)`,
    );
  if (kind !== 'postgres') return reconcileAcross(config, o);
  const source = new pg.Pool({ connectionString: config.sourceDatabaseUrl, max: 2, application_name: `trustsync:${config.flow}:reconcile` });
  const pool = new pg.Pool({ connectionString: config.destinationUrl, max: 3, application_name: `trustsync:${config.flow}:reconcile` });
  const reversePool = reverse && new pg.Pool({ connectionString: reverse.destinationUrl, max: 2, application_name: `trustsync:${reverse.flow}:reconcile` });
  const sink = new PostgresSink(pool);
  const opened: (GovernedTables | undefined)[] = [];
  try {
    await sink.prepare();
    const governed = await prepareGovernance(config, sink, o.log);
    opened.push(governed);
    const backSink = reversePool && new PostgresSink(reversePool);
    await backSink?.prepare();
    const backGoverned = reverse && backSink && (await prepareGovernance(reverse, backSink, o.log));
    opened.push(backGoverned);
    const tables: TableReport[] = [];
    for (const m of config.tables) {
      const g = governed?.byTopic.get(m.topic);
      const backTable = backGoverned && reverse!.tables.find((t) => t.policy && targetName(t.table) === m.sourceTable);
      const backG = backTable && backGoverned.byTopic.get(backTable.topic);
      tables.push(
        await reconcileTable(
          {
            flow: config.flow,
            source,
            sink,
            m,
            systems: { source: config.sourceSystem ?? 'source', destination: config.destinationSystem ?? 'destination' },
            governed: g && governed ? { sink: governed.sink, m, g } : undefined,
            back: g && backTable && backG ? { sink: backGoverned.sink, m: backTable, g: backG } : undefined,
          },
          o,
        ),
      );
    }
    return { tables, clean: tables.every((t) => t.differences.every((d) => d.recommendedAction === 'ignore' || d.repaired)) };
  } finally {
    for (const gv of opened) await gv?.sourceDb?.end();
    await source.end();
    await pool.end();
    await reversePool?.end();
  }
}

/** A destination of another kind than the source: each table compared in canonical text (sink.ts), differences listed. */
async function reconcileAcross(config: FlowConfig, o: ReconcileOptions): Promise<{ tables: TableReport[]; clean: boolean }> {
  const source = new pg.Pool({ connectionString: config.sourceDatabaseUrl!, max: 2, application_name: `trustsync:${config.flow}:reconcile` });
  const sink = openSink(config.destinationUrl, { name: `trustsync:${config.flow}:reconcile`, connections: 2 });
  try {
    const tables: TableReport[] = [];
    const systems = { source: config.sourceSystem ?? 'source', destination: config.destinationSystem ?? 'destination' };
    for (const m of config.tables) tables.push(await reconcileTable({ flow: config.flow, source, sink, m, systems }, o));
    return { tables, clean: tables.every((t) => t.differences.length === 0) };
  } finally {
    await source.end();
    await sink.close();
  }
}
