import type { Logger } from 'pino';
import type { FlowConfig } from '../flow/config.js';
import { prepareGovernance, type GovernedTables } from '../flow/governance.js';
import { fieldPolicy } from '../policy/policy.js';
import { validate } from '../policy/validators.js';
import { parseTableName, targetName, type TableMapping, type TableName } from '../model/table.js';
import { ConfigError, TrustsyncError } from '../model/errors.js';
import { openSink, openSourceDatabase, sinkKindFor } from '../sink/kinds.js';
import type { Governance, GovernedDestination } from '../sink/governance.js';
import type { CanonicalRows, RepairCandidate, Sink } from '../sink/sink.js';
import type { SourceDatabase } from '../sink/source.js';

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
 * One side of the comparison: the row's key and compared values, in its own column names, read as
 * `rows` gives them — in the database's own text when both sides are of one kind (a repair copies
 * that text), in the canonical text both produce alike across kinds (sink.ts).
 */
interface Side {
  rows: CanonicalRows;
  table: TableName;
  key: string[];
  values: string[];
}

/** Rows per bucket read at level 3, at most (about): keeps memory flat whatever the table's size. */
const ROWS_PER_BUCKET = 500;

/** At least the asked-for buckets, more for big tables (from the planner's row estimate), a power of two. */
async function bucketCount(a: Side, b: Side, asked: number): Promise<number> {
  const rows = Math.max(await a.rows.estimateRows(a.table), await b.rows.estimateRows(b.table));
  const needed = 2 ** Math.ceil(Math.log2(Math.max(1, rows / ROWS_PER_BUCKET)));
  return Math.min(65536, Math.max(asked, needed));
}

/** Level 1 and 2: per bucket, a row count and a digest of the rows' values, computed inside the database. */
const bucketDigests = (s: Side, n: number) => s.rows.bucketDigests(s.table, s.key, s.values, n);

/** Level 3, for mismatching buckets only: the rows, as text. */
const bucketRows = (s: Side, n: number, buckets: number[]) => s.rows.bucketRows(s.table, s.key, s.values, n, buckets);

/** A governed table's writer: its flow's destination under policy, with the table's mapping there. */
interface GovernedTable {
  sink: GovernedDestination;
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
  if (!t.governed) return { destination: (await t.sink.repair?.ledgerStates(t.m, keys)) ?? new Map(), source: new Map() };
  return { destination: await t.governed.sink.rowStates(t.governed.m, keys), source: t.back ? await t.back.sink.rowStates(t.back.m, keys) : new Map() };
}

/** What reconciling one table works with. */
interface TableContext {
  flow: string;
  source: SourceDatabase;
  /** Of the source's kind (compared in their own text, repairable), or another (compared in canonical text). */
  sink: Sink;
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
  const across = source.kind !== sink.kind;
  const [srcRows, dstRows] = across ? [source.canonical, sink.canonical] : [source.native, sink.native];
  const [srcShape, dstShape] = await Promise.all([srcRows.shape(srcName), dstRows.shape(m.table)]);
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
  const srcSide: Side = { rows: srcRows, table: srcName, key: srcKey, values: pairs.map((p) => p.src) };
  const dstSide: Side = { rows: dstRows, table: m.table, key: dstKey, values: pairs.map((p) => p.dst) };
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
      // A field under policy: the destination is governed, and reads the text of both sides (one kind).
      const typed = (v: string | null | undefined) => t.governed!.sink.valueFromText(v ?? null, type);
      const problem = validate(p.validators, typed(text), { field: d.field!, previous: typed(other), system: from });
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
      : await sink.repair!.repairCopy({
          flow: t.flow,
          m,
          keyColumns: dstSide.key,
          pairs,
          candidates: differences.filter((d) => REPAIRABLE.has(d.recommendedAction)).map(repairCandidate),
          seen: seen.destination,
          readSource: (keys) => source.rowsByKey(srcName, srcSide.key, srcSide.values, keys),
        });
    if (!t.governed) for (const d of differences) if (REPAIRABLE.has(d.recommendedAction) && !moved.has(d.key)) d.repaired = true;
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
  const toDestination = valuesByKey('update-destination', (d) => [d.field!, dest.sink.valueFromText(d.source ?? null, dstTypes.get(d.field!)!)]);
  const moved = new Set<string>();
  const repairIn = async (side: GovernedTable, repairs: typeof toDestination, reason: string, states: ReadonlyMap<string, string>) => {
    if (repairs.length) for (const key of (await side.sink.repairFields(side.m, side.g, repairs, reason, states)).moved) moved.add(key);
  };
  await repairIn(dest, toDestination, `reconcile: ${systems.destination} lacked the owner's (${systems.source}) value`, seen.destination);
  const sourceColumn = (field: string) => sourceColumnOf(pairs, field);
  const toSource = valuesByKey('update-source', (d) => [
    sourceColumn(d.field!),
    (back ?? dest).sink.valueFromText(d.destination ?? null, srcTypes.get(sourceColumn(d.field!))!),
  ]);
  if (back) await repairIn(back, toSource, `reconcile: ${systems.source} lacked the owner's (${systems.destination}) value`, seen.source);
  for (const d of diffs)
    if ((d.recommendedAction === 'update-destination' && d.kind === 'field') || (d.recommendedAction === 'update-source' && back)) d.repaired = true;
  return moved;
}

/** A difference as the destination's repair takes it (differences of other actions are never repairs without policy). */
function repairCandidate(d: Difference): RepairCandidate {
  return { key: d.key, action: d.recommendedAction === 'delete-destination' ? 'delete-destination' : 'update-destination', field: d.field };
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
  const [sourceKind, destinationKind] = [sinkKindFor(config.sourceDatabaseUrl)?.kind ?? 'other', sinkKindFor(config.destinationUrl)?.kind ?? 'other'];
  const across = sourceKind !== destinationKind;
  if (across && (o.repair || reverse))
    throw new ConfigError(
      'reconcile-unsupported',
      `reconcile finds the differences of a ${destinationKind} destination from a ${sourceKind} source, but does not ${o.repair ? 'repair them' : 'reconcile two ways'} yet`,
      `run it without ${o.repair ? '--repair' : '--reverse'}; mend what it lists by hand, or re-snapshot the source (trustsync connectors resnapshot)`,
    );
  const name = (flow: string) => `trustsync:${flow}:reconcile`;
  const source = openSourceDatabase(config.sourceDatabaseUrl, { name: name(config.flow), connections: 2 });
  const sink = openSink(config.destinationUrl, { name: name(config.flow), connections: 3, settings: config.destinationSettings });
  const backSink = reverse && openSink(reverse.destinationUrl, { name: name(reverse.flow), connections: 2, settings: reverse.destinationSettings });
  const opened: (GovernedTables | undefined)[] = [];
  try {
    if (o.repair && !sink.repair)
      throw new ConfigError(
        'reconcile-unsupported',
        `reconcile cannot repair a ${sink.kind} destination yet`,
        'run it without --repair; mend what it lists by hand',
      );
    // Across kinds nothing is written: trustsync's own tables are left as they are.
    if (!across) await sink.prepare();
    const governed = across ? undefined : await prepareGovernance(config, sink, o.log);
    opened.push(governed);
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
    for (const gv of opened) await gv?.sink.close();
    await source.close();
    await sink.close();
    await backSink?.close();
  }
}
