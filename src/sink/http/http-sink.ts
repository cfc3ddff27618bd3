import type pg from 'pg';
import { UNAVAILABLE_VALUE, type ChangeEvent, type TruncateEvent } from '../../model/change.js';
import type { BatchAudit, RowDecision, TruncateDecision } from '../../model/decision.js';
import { ConfigError, DestinationUnavailable, RowRejected, TransientSinkError, TrustsyncError } from '../../model/errors.js';
import type { HistoryRow } from '../../model/history-row.js';
import { mapRow, targetName, type TableMapping, type TableName } from '../../model/table.js';
import { decisionRow } from '../../history/history.js';
import type { Explanation } from '../../history/explain.js';
import { formatRank, positionRank } from '../../order/position.js';
import { classifyPgError } from '../postgres/pg-errors.js';
import { PostgresSink, recordHistory } from '../postgres/postgres-sink.js';
import { CLAIM_POSITIONS } from '../postgres/sql.js';
import { CLEAR_SENT, KEY_GUARDS, LOCK_KEYS, MARK_SENT, UNLOCK_KEYS } from './sql.js';
import type { CanonicalRows, RequestObserver, Sink, SinkCapabilities } from '../sink.js';
import { deliver, type Delivery, type DeliveryTarget } from './deliver.js';
import { DestinationLimiter } from './limiter.js';
import { changeRequest, type ChangeRequest } from './request.js';
import { authHeaders, type HttpSettings, type HttpTable } from './settings.js';
import { sendsDeletes, sendsField } from './authority.js';

export const HTTP_CAPABILITIES: SinkCapabilities = {
  transactions: false,
  governance: false,
  fieldAuthority: true,
  truncate: false,
  reconcile: false,
  everyChange: true,
};

/** What one attempt of a batch learned, kept for the next attempt of the same batch. */
interface BatchMemo {
  /** Decisions already on record, by change (correlation id): told again, never sent again. */
  decided: Map<string, RowDecision>;
  /** History rows of the audit already on record. */
  recorded: WeakSet<HistoryRow>;
}

/**
 * An HTTP API as a destination. The API cannot join a transaction, so the position ledger and the
 * history live in a control PostgreSQL database, and the contract is: a key's position is claimed
 * only after the API acknowledged the change; a crash in between sends the same request again
 * with the same idempotency key; the flow commits offsets only after the claim. A batch holds an
 * advisory lock per key in the control database from reading the ledger to claiming, so two
 * members of a group (a rebalance's overlap) never send one key at once.
 */
export class HttpSink implements Sink {
  readonly kind = 'http';
  readonly capabilities = HTTP_CAPABILITIES;
  readonly canonical: CanonicalRows = unsupportedRows();
  readonly native: CanonicalRows = unsupportedRows();
  readonly control: PostgresSink;
  private readonly limiter: DestinationLimiter;
  private readonly memos = new Map<string, BatchMemo>();
  private headers: Record<string, string> | undefined;
  private halt: TrustsyncError | undefined;

  constructor(
    private readonly baseUrl: string,
    private readonly settings: HttpSettings,
    controlPool: pg.Pool,
    private readonly observer?: RequestObserver,
  ) {
    this.control = new PostgresSink(controlPool);
    this.limiter = new DestinationLimiter(settings.concurrency, settings.rateLimit);
  }

  private get pool(): pg.Pool {
    return this.control.pool;
  }

  async prepare(): Promise<void> {
    this.headers ??= { 'user-agent': 'trustsync', ...authHeaders(this.settings.auth) };
    await this.control.prepare();
  }

  /** The control database answers, and the API answers at all (any status: its root need not exist). */
  async ping(): Promise<void> {
    await this.control.ping();
    await fetch(this.baseUrl, { method: 'HEAD', signal: AbortSignal.timeout(this.settings.timeoutMs) }).catch((err: Error & { cause?: { code?: string } }) => {
      throw new TransientSinkError(`destination.url: ${this.baseUrl} does not answer (${err.cause?.code ?? err.message})`, err);
    });
  }

  async applyBatch(m: TableMapping, latest: readonly ChangeEvent[], audit?: BatchAudit, superseded: readonly ChangeEvent[] = []): Promise<RowDecision[]> {
    if (this.halt) throw this.halt;
    const target = targetName(m.table);
    const spec = this.settings.tables[target];
    if (!spec)
      throw new ConfigError('http-table', `destination.tables: ${target} has no http requests`, 'give the table an http section with its upsert request');
    const memo = this.memoFor(audit?.batchId);
    // Each key's changes in source order; keys in parallel, up to the destination's concurrency.
    const byKey = new Map<string, ChangeEvent[]>();
    for (const e of latest) byKey.set(e.keyText, [...(byKey.get(e.keyText) ?? []), e]);
    for (const changes of byKey.values()) changes.sort((a, b) => (positionRank(a.position) < positionRank(b.position) ? -1 : 1));
    const keys = [...byKey.keys()].sort();

    const client = await this.pool.connect().catch((err: unknown) => {
      throw classifyPgError(err, 'reaching the control database');
    });
    let broken: Error | undefined;
    try {
      // Held from reading the guards to the claim: no other member sends these keys meanwhile.
      await client.query(LOCK_KEYS, [target, keys]);
      const guards = new Map(
        (await client.query<GuardRow>(KEY_GUARDS, [target, keys])).rows.map((r) => [
          r.key,
          {
            claimed: r.claimed === null ? undefined : BigInt(r.claimed),
            sent: r.sent === null ? undefined : BigInt(r.sent),
            request: r.request ?? undefined,
          },
        ]),
      );
      const decisions: RowDecision[] = [];
      /** Changes the API has now, each key's in source order: acknowledged, or conceded (it holds a newer version). */
      const acknowledged: { event: ChangeEvent; conceded: boolean }[] = [];
      /** The history rows of decisions that tell their request. */
      const rowOf = new Map<RowDecision, HistoryRow>();
      let unavailable: string | undefined;
      /** A request that went out before and was never acknowledged: the API may hold it, or not yet. */
      const unfinished = (key: string) => {
        const g = guards.get(key);
        return g?.request && g.sent !== undefined && (g.claimed === undefined || g.sent > g.claimed) ? { rank: g.sent, request: g.request } : undefined;
      };
      const requestFor = (e: ChangeEvent, claimed: bigint | undefined): ChangeRequest | RowRejected | undefined => {
        const pending = unfinished(e.keyText);
        // Sent again exactly as it went out: one idempotency key, one body.
        if (pending?.rank === positionRank(e.position)) return pending.request;
        try {
          return changeRequest(spec, m, withCarriedValues(e, claimed, superseded));
        } catch (err) {
          if (err instanceof RowRejected) return err;
          throw err;
        }
      };

      // Each key's first change to go out is marked sent, with its request, for all keys in one
      // statement; a key's later changes (deliver: every) are marked one by one, each before its request.
      const marked = new Map<string, bigint>();
      const prepared = new Map<string, ChangeRequest | RowRejected | undefined>();
      const firstMarks: { key: string; rank: bigint; request: ChangeRequest }[] = [];
      for (const [key, changes] of byKey) {
        const g = guards.get(key);
        if (g?.sent !== undefined) marked.set(key, g.sent);
        const first = changes.find((e) => {
          const rank = positionRank(e.position);
          return !memo.decided.has(changeKey(e)) && (g?.claimed === undefined || rank > g.claimed) && (g?.sent === undefined || rank >= g.sent);
        });
        if (!first) continue;
        const request = requestFor(first, g?.claimed);
        prepared.set(changeKey(first), request);
        const rank = positionRank(first.position);
        // Past an unfinished request, the mark moves only once that request is finished.
        if (request && !(request instanceof RowRejected) && !(unfinished(key) && rank > g!.sent!)) firstMarks.push({ key, rank, request });
      }
      const newMarks = firstMarks.filter((f) => f.rank > (marked.get(f.key) ?? -1n));
      if (newMarks.length) {
        await client.query(MARK_SENT, [
          target,
          newMarks.map((f) => f.key),
          newMarks.map((f) => f.rank.toString()),
          newMarks.map((f) => JSON.stringify(f.request)),
        ]);
        for (const f of newMarks) marked.set(f.key, f.rank);
      }
      // The keys' workers share one connection: their marks go through it one after another.
      let marking: Promise<unknown> = Promise.resolve();
      const markSent = (key: string, rank: bigint, request: ChangeRequest) => {
        const mark = marking.then(() => client.query(MARK_SENT, [target, [key], [rank.toString()], [JSON.stringify(request)]]));
        marking = mark.catch(() => undefined);
        return mark;
      };
      /** Whether nothing more of the key is sent now: the API is unreachable, or refuses trustsync itself. */
      const stopsKey = (delivery: Delivery): delivery is Extract<Delivery, { outcome: 'unauthorized' | 'unusable' | 'unavailable' }> => {
        if (delivery.outcome === 'unusable') {
          this.halt ??= new ConfigError('http-version', `destination.tables: ${target} ${delivery.problem}: nothing more is sent`, delivery.fix);
          return true;
        }
        if (delivery.outcome === 'unauthorized') {
          this.halt ??= new TrustsyncError(
            'http-unauthorized',
            `${this.baseUrl} refused trustsync's credentials (${delivery.status}): nothing more is sent`,
            false,
            {
              family: 'config',
              fix: 'check destination.http.auth and the secret it names, then restart the flow; nothing was dead-lettered and no offset was committed past it',
            },
          );
          return true;
        }
        if (delivery.outcome === 'unavailable') {
          // The key's later changes wait for this one: never out of order.
          unavailable ??= delivery.last;
          return true;
        }
        return false;
      };
      const sendKey = async (changes: ChangeEvent[]) => {
        const key = changes[0]!.keyText;
        const guard = guards.get(key);
        // The API acknowledged `claimed`; it may hold up to `sent`, the newest change that went out.
        let claimed = guard?.claimed;
        const sent = guard?.sent;
        let pending = unfinished(key);
        for (const e of changes) {
          const rank = positionRank(e.position);
          const told = memo.decided.get(changeKey(e));
          if (told) {
            decisions.push(told);
            if (told.decision === 'applied') claimed = rank;
            continue;
          }
          if (claimed !== undefined && rank <= claimed) {
            decisions.push({ decision: 'skipped', reason: rank === claimed ? 'duplicate' : 'stale', event: e, storedPosition: claimed.toString() });
            continue;
          }
          // Sent before and never acknowledged (the process died): a newer change went out, this one would take the record back.
          if (sent !== undefined && rank < sent) {
            decisions.push({ decision: 'skipped', reason: 'stale', event: e, storedPosition: sent.toString() });
            continue;
          }
          let finished = '';
          if (pending && rank > pending.rank) {
            // The unfinished request's change was superseded in this batch: it is finished first, since
            // it may carry values (an unchanged large column's) that no later change does.
            const delivery = await deliver(this.target(audit?.signal), pending.request, spec.version);
            if (stopsKey(delivery)) return;
            finished = `; first finished ${pending.request.method} ${pending.request.path} (idempotency key ${pending.request.idempotencyKey}, ${delivery.outcome === 'stale' ? 'the API holds a newer version' : `answered ${delivery.status}`})`;
            pending = undefined;
          }
          const request = prepared.has(changeKey(e)) ? prepared.get(changeKey(e)) : requestFor(e, claimed);
          if (request instanceof RowRejected) {
            decisions.push({ decision: 'rejected', event: e, error: request });
            continue;
          }
          if (pending?.rank === rank) pending = undefined;
          if (request && rank > (marked.get(key) ?? -1n)) {
            await markSent(key, rank, request);
            marked.set(key, rank);
          }
          const delivery: Delivery = request
            ? await deliver(this.target(audit?.signal), request, spec.version)
            : { outcome: 'acknowledged', status: 0, attempts: 0 };
          if (delivery.outcome === 'acknowledged') {
            claimed = rank;
            const d: RowDecision = { decision: 'applied', event: e };
            decisions.push(d);
            acknowledged.push({ event: e, conceded: false });
            rowOf.set(d, {
              ...decisionRow(target, d),
              reason: acknowledgement(spec, m, e, request, delivery) + finished,
              idempotencyKey: request?.idempotencyKey ?? null,
            });
          } else if (delivery.outcome === 'stale') {
            // The API holds this version or a newer one: as far as the ledger goes, it has this change.
            claimed = rank;
            const d: RowDecision = { decision: 'skipped', reason: 'stale', event: e, storedPosition: (delivery.held ?? rank).toString() };
            decisions.push(d);
            acknowledged.push({ event: e, conceded: true });
            rowOf.set(d, { ...decisionRow(target, d), reason: refusedAsStale(request!, delivery) + finished, idempotencyKey: request!.idempotencyKey });
          } else if (delivery.outcome === 'refused') {
            const why = `${request!.method} ${request!.path} answered ${delivery.status}${delivery.excerpt ? `: ${delivery.excerpt}` : ''}`;
            decisions.push({ decision: 'rejected', event: e, error: new RowRejected(why) });
          } else if (stopsKey(delivery)) return;
        }
      };
      const queue = [...byKey.values()];
      const workers = Array.from({ length: Math.min(this.settings.concurrency, queue.length) }, async () => {
        for (let changes = queue.shift(); changes; changes = queue.shift()) if (!this.halt) await sendKey(changes);
      });
      await Promise.all(workers);
      await marking;

      const fresh = decisions.filter((d) => !memo.decided.has(changeKey(d.event)));
      const rows = [...(audit?.extra ?? []).filter((r) => !memo.recorded.has(r)), ...fresh.map((d) => rowOf.get(d) ?? decisionRow(target, d))];
      // Claimed only now, after the API acknowledged: a crash before COMMIT sends them again, with the same keys.
      await client.query('BEGIN');
      if (acknowledged.length) {
        // Each key's newest change the API has is its claim (deliver: every acknowledges several).
        const newest = new Map(acknowledged.map((a) => [a.event.keyText, a]));
        const claims = new Map([...newest].map(([k, a]) => [k, positionRank(a.event.position).toString()]));
        const won = await client.query<{ key: string; won: boolean }>(CLAIM_POSITIONS, [
          target,
          [...claims.keys()],
          [...claims.values()],
          [...newest.values()].map((a) => a.event.op === 'd'),
          null,
        ]);
        // A concession may find the ledger moved past it already; an acknowledgement may not.
        if (won.rows.some((r) => !r.won && !newest.get(r.key)!.conceded))
          throw new TransientSinkError(`${target}: a key's position moved while its change was being sent; the batch is sent again`);
        await client.query(CLEAR_SENT, [target, [...claims.keys()], [...claims.values()]]);
      }
      await recordHistory(client, audit?.flow ?? '', rows);
      await client.query('COMMIT');
      // On record: a later attempt of this batch tells them again without sending or recording them.
      for (const d of fresh) memo.decided.set(changeKey(d.event), d);
      for (const r of audit?.extra ?? []) memo.recorded.add(r);
      if (this.halt) throw this.halt;
      if (unavailable) throw new DestinationUnavailable(`${this.baseUrl}: ${unavailable}`);
      if (audit?.batchId) this.memos.delete(audit.batchId);
      return decisions;
    } catch (err) {
      await client.query('ROLLBACK').catch((e: Error) => (broken = e));
      throw err instanceof TrustsyncError ? err : classifyPgError(err, `sending ${latest.length} changes to ${this.baseUrl}`);
    } finally {
      // A connection whose locks cannot be let go is discarded: closing it lets them go.
      if (!broken) await client.query(UNLOCK_KEYS).catch((e: Error) => (broken = e));
      client.release(broken);
    }
  }
  private target(signal: AbortSignal | undefined): DeliveryTarget {
    return {
      signal,
      baseUrl: this.baseUrl,
      headers: this.headers ?? {},
      idempotencyHeader: this.settings.idempotencyHeader,
      timeoutMs: this.settings.timeoutMs,
      maxAttempts: this.settings.maxAttempts,
      maxDelayMs: this.settings.maxDelayMs,
      limiter: this.limiter,
      halted: () => this.halt !== undefined || signal?.aborted === true,
      onAttempt: (a) => {
        this.observer?.attempted(a);
        // Told before the slot is let go: the attempt that ended is not in flight any more.
        this.observer?.load(this.limiter.active - 1, this.limiter.rate);
      },
    };
  }

  private memoFor(batchId: string | undefined): BatchMemo {
    const fresh = (): BatchMemo => ({ decided: new Map(), recorded: new WeakSet() });
    if (batchId === undefined) return fresh();
    let memo = this.memos.get(batchId);
    if (!memo) {
      // Batches that were given up on (the flow stopped) leave theirs: keep the newest few.
      if (this.memos.size >= 64) this.memos.delete(this.memos.keys().next().value!);
      this.memos.set(batchId, (memo = fresh()));
    }
    return memo;
  }

  applyTruncate(m: TableMapping, _t: TruncateEvent): Promise<TruncateDecision> {
    return Promise.reject(
      new ConfigError('http-truncate', `${targetName(m.table)}: an HTTP destination cannot apply a TRUNCATE`, 'use truncate: stop or skip'),
    );
  }

  recordDecisions(flow: string, rows: readonly HistoryRow[]): Promise<void> {
    return this.control.recordDecisions(flow, rows);
  }

  readRows(m: TableMapping): Promise<Map<string, Record<string, string | null> | null>> {
    return Promise.reject(notReadable(targetName(m.table)));
  }

  columnsOf(_t: TableName): Promise<string[] | undefined> {
    return Promise.resolve(undefined);
  }

  explain(target: string, key: string, options?: { at?: Date; field?: string; all?: boolean }): Promise<Explanation> {
    return this.control.explain(target, key, options);
  }

  purgeTombstones(retentionMs: number): Promise<number> {
    return this.control.purgeTombstones(retentionMs);
  }

  purgeHistory(flow: string, retentionMs: number): Promise<number> {
    return this.control.purgeHistory(flow, retentionMs);
  }

  snapshotLongHistories(flow: string): Promise<number> {
    return this.control.snapshotLongHistories(flow);
  }

  close(): Promise<void> {
    return this.control.close();
  }
}

/**
 * A change whose update left TOASTed columns unchanged, with their values from the newest older
 * change of the batch that carried them and that the API never got (newer than the key's claimed
 * position `held`): sent without them, the API would keep a value older than that change's.
 */
export function withCarriedValues(e: ChangeEvent, held: bigint | undefined, superseded: readonly ChangeEvent[]): ChangeEvent {
  if (!e.after || !Object.values(e.after).includes(UNAVAILABLE_VALUE)) return e;
  const rank = positionRank(e.position);
  const carriers = superseded
    .filter((s) => s.keyText === e.keyText && s.after && positionRank(s.position) < rank && (held === undefined || positionRank(s.position) > held))
    .sort((a, b) => (positionRank(a.position) < positionRank(b.position) ? 1 : -1));
  const after = { ...e.after };
  for (const [column, value] of Object.entries(after)) {
    if (value !== UNAVAILABLE_VALUE) continue;
    const carried = carriers.find((c) => c.after![column] !== undefined && c.after![column] !== UNAVAILABLE_VALUE);
    if (carried) after[column] = carried.after![column];
  }
  return { ...e, after };
}

/** A key's guard as the control database holds it. */
interface GuardRow {
  key: string;
  claimed: string | null;
  sent: string | null;
  request: ChangeRequest | null;
}

/** The change's identity within a batch. */
function changeKey(e: ChangeEvent): string {
  return `${e.keyText}@${positionRank(e.position)}`;
}

/** How the API said it holds a version of the record not older than the change's. */
function refusedAsStale(request: ChangeRequest, d: Extract<Delivery, { outcome: 'stale' }>): string {
  return d.held === undefined
    ? `${request.method} ${request.path} answered ${d.status}: the API holds a newer version (idempotency key ${request.idempotencyKey})`
    : `not sent: GET ${request.path} holds version ${formatRank(d.held)}, not older than this change's`;
}

/** How the API acknowledged a change, as its history tells it: with the fields its policy left to the API. */
function acknowledgement(
  spec: HttpTable,
  m: TableMapping,
  e: ChangeEvent,
  request: ChangeRequest | undefined,
  sent: Extract<Delivery, { outcome: 'acknowledged' }>,
): string {
  const a = spec.authority;
  if (!request && a && !sendsDeletes(a)) return `not sent: policy ${a.entity} leaves deleting a record to ${a.keeper}, the API keeps it`;
  if (!request) return 'not sent: the table has no delete request (destination.tables.*.http.delete), the API keeps the record';
  const kept = a && e.after ? Object.keys(mapRow(m, e.after)).filter((f) => !sendsField(a, f)) : [];
  return `${request.method} ${request.path} answered ${sent.status} on attempt ${sent.attempts}, idempotency key ${request.idempotencyKey}${
    kept.length ? `; left to ${a!.keeper} by policy ${a!.entity}: ${kept.join(', ')}` : ''
  }`;
}

function notReadable(target: string): ConfigError {
  return new ConfigError(
    'http-not-readable',
    `${target}: an HTTP destination cannot be read back`,
    'remove the state topic, reconcile and canary for this flow',
  );
}

function unsupportedRows(): CanonicalRows {
  const refuse = (t: TableName) => Promise.reject(notReadable(targetName(t)));
  return { shape: refuse, estimateRows: refuse, bucketDigests: refuse, bucketRows: refuse };
}
