import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A write the API applied, as it keeps its own account of them. */
export interface AppliedWrite {
  collection: string;
  id: string;
  method: string;
  idempotencyKey: string | undefined;
  body: Record<string, unknown> | undefined;
}

export interface CrmApiOptions {
  port?: number;
  /** Requests must carry `Authorization: Bearer <token>` when set. */
  token?: string;
  idempotencyHeader?: string;
  /** A record this returns a reason for is refused with 422 (the API's own validation); read at each request. */
  validate?: (collection: string, record: Record<string, unknown>) => string | undefined;
  /** Records carry an ETag and writes honour If-Match / If-None-Match (412); true unless false. */
  etags?: boolean;
  /**
   * External versions, as search engines and some CRMs keep them: a write whose version (the body's
   * `field`, or the `header`) is not newer than the one the record holds, or its delete carried, is
   * refused with 409.
   */
  versions?: { field: string; header?: string };
}

/**
 * A small CRM-like API on 127.0.0.1 with its own store: records under /{collection}/{id}; PUT
 * replaces, PATCH merges (creating a missing record), DELETE removes; GET reads one record or a
 * whole collection. It honours idempotency keys (a repeat gets the first answer and changes
 * nothing), and on command answers 429 with Retry-After, 503, slowly, or not at all (stopped and
 * started again on the same port, its store kept).
 */
export class CrmApi {
  readonly store = new Map<string, Map<string, Record<string, unknown>>>();
  /** Every write applied, in order: the API's own account, independent of trustsync's. */
  readonly writes: AppliedWrite[] = [];
  /** Every request that reached a handler: method, path, idempotency key, status answered. */
  readonly requests: { method: string; path: string; idempotencyKey: string | undefined; status: number }[] = [];
  /** Repeats answered from the idempotency store. */
  replays = 0;
  /** Service time added to every request. */
  delayMs = 0;
  /** Writes refused because the record held a newer version (409) or was not as the writer read it (412). */
  conflicts = { version: 0, precondition: 0 };
  private throttle = { remaining: 0, retryAfterSeconds: 1 };
  /** Each record's revision, for its ETag: every write moves it. */
  private readonly revisions = new Map<string, number>();
  /** The version each deleted record had its delete at (versions on). */
  private readonly tombstones = new Map<string, string>();
  private interference: { collection: string; id: string; patch: Record<string, unknown> } | undefined;
  private unavailable = 0;
  private readonly answered = new Map<string, { status: number; body: string }>();
  private server: Server | undefined;
  private port: number;
  private readonly idempotencyHeader: string;

  constructor(private readonly options: CrmApiOptions = {}) {
    this.port = options.port ?? 0;
    this.idempotencyHeader = (options.idempotencyHeader ?? 'Idempotency-Key').toLowerCase();
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<this> {
    const server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
    return this;
  }

  /** Stops answering: open connections are cut, as a crashed server's are. The store is kept for start(). */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** The next `count` requests are answered 429 with Retry-After. */
  throttleNext(count: number, retryAfterSeconds = 1): void {
    this.throttle = { remaining: count, retryAfterSeconds };
  }

  /** The next `count` requests are answered 503 without Retry-After. */
  failNext(count: number): void {
    this.unavailable = count;
  }

  /** Another writer edits the record right after the next read of it: a write conditional on that read fails (412). */
  editAfterNextRead(collection: string, id: string, patch: Record<string, unknown>): void {
    this.interference = { collection, id, patch };
  }

  /** The records of a collection, by id. */
  records(collection: string): Map<string, Record<string, unknown>> {
    return this.store.get(collection) ?? new Map();
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    if (this.delayMs) await new Promise((r) => setTimeout(r, this.delayMs));
    const key = header(req, this.idempotencyHeader);
    const method = req.method ?? 'GET';
    const path = (req.url ?? '/').split('?')[0]!;
    const answer = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      const text = body === undefined ? '' : JSON.stringify(body);
      this.requests.push({ method, path, idempotencyKey: key, status });
      res.writeHead(status, { 'content-type': 'application/json', ...headers });
      res.end(text);
      return text;
    };
    if (this.options.token && header(req, 'authorization') !== `Bearer ${this.options.token}`) return void answer(401, { error: 'invalid credentials' });
    if (this.throttle.remaining > 0) {
      this.throttle.remaining--;
      return void answer(429, { error: 'slow down' }, { 'retry-after': String(this.throttle.retryAfterSeconds) });
    }
    if (this.unavailable > 0) {
      this.unavailable--;
      return void answer(503, { error: 'temporarily unavailable' });
    }
    const [, collection, rawId, extra] = path.split('/');
    if (method === 'HEAD' || method === 'GET') {
      if (!collection) return void answer(200, { collections: [...this.store.keys()] });
      const records = this.records(collection);
      if (!rawId) return void answer(200, [...records.values()]);
      const id = decodeURIComponent(rawId);
      const record = records.get(id);
      if (!record) return void answer(404, { error: 'not found' });
      answer(200, record, this.etagHeader(collection, id));
      const edit = this.interference;
      if (edit?.collection === collection && edit.id === id) {
        this.interference = undefined;
        records.set(id, { ...record, ...edit.patch });
        this.revise(collection, id);
      }
      return;
    }
    if (!collection || !rawId || extra !== undefined) return void answer(404, { error: `no such resource ${path}` });
    const id = decodeURIComponent(rawId);
    if (key) {
      const first = this.answered.get(key);
      if (first) {
        this.replays++;
        this.requests.push({ method, path, idempotencyKey: key, status: first.status });
        res.writeHead(first.status, { 'content-type': 'application/json', 'idempotent-replayed': 'true' });
        return void res.end(first.body);
      }
    }
    // As payment APIs do: a request refused before it changed anything (4xx) keeps no result under
    // its key, so the same request may succeed once the cause is fixed.
    const remember = (status: number, body: unknown) => {
      const text = answer(status, body);
      if (key && (status < 400 || status === 404)) this.answered.set(key, { status, body: text });
    };
    let body: Record<string, unknown> | undefined;
    if (method !== 'DELETE') {
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
      } catch {
        return void remember(400, { error: 'the body is not JSON' });
      }
      if (typeof body !== 'object' || body === null || Array.isArray(body)) return void remember(400, { error: 'the body must be a JSON object' });
    }
    const records = this.store.get(collection) ?? new Map<string, Record<string, unknown>>();
    this.store.set(collection, records);
    const current = records.get(id);
    if (this.options.etags !== false) {
      const ifMatch = header(req, 'if-match');
      const ifNoneMatch = header(req, 'if-none-match');
      if ((ifMatch !== undefined && (!current || ifMatch !== this.etag(collection, id))) || (ifNoneMatch === '*' && current)) {
        this.conflicts.precondition++;
        return void remember(412, { error: 'the record is not as the request expected' });
      }
    }
    const versions = this.options.versions;
    const incoming = versions?.header ? header(req, versions.header.toLowerCase()) : undefined;
    const version = versions ? ((body?.[versions.field] as string | undefined) ?? incoming) : undefined;
    if (versions && (current || this.tombstones.has(`${collection}/${id}`))) {
      const held = current ? current[versions.field] : this.tombstones.get(`${collection}/${id}`);
      const numeric = (v: unknown) => (v !== undefined && /^\d+$/.test(String(v)) ? BigInt(String(v)) : undefined);
      const [theirs, ours] = [numeric(version), numeric(held)];
      if (theirs !== undefined && ours !== undefined && theirs <= ours) {
        this.conflicts.version++;
        return void remember(409, { error: `version conflict: the record holds version ${String(held)}` });
      }
    }
    if (method === 'DELETE') {
      if (!records.delete(id)) return void remember(404, { error: 'not found' });
      // As search engines keep a deleted document's version: an older write does not bring it back.
      if (version !== undefined) this.tombstones.set(`${collection}/${id}`, version);
      this.revise(collection, id);
      this.writes.push({ collection, id, method, idempotencyKey: key, body: undefined });
      return void remember(204, undefined);
    }
    const next = method === 'PATCH' ? { ...(current ?? {}), ...body } : { ...body };
    const invalid = this.options.validate?.(collection, next);
    if (invalid) return void remember(422, { error: invalid });
    records.set(id, next);
    this.revise(collection, id);
    this.writes.push({ collection, id, method, idempotencyKey: key, body });
    remember(current ? 200 : 201, next);
  }

  private revise(collection: string, id: string): void {
    const at = `${collection}/${id}`;
    this.revisions.set(at, (this.revisions.get(at) ?? 0) + 1);
  }

  private etag(collection: string, id: string): string {
    return `"${this.revisions.get(`${collection}/${id}`) ?? 0}"`;
  }

  private etagHeader(collection: string, id: string): Record<string, string> {
    return this.options.etags === false ? {} : { etag: this.etag(collection, id) };
  }
}

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}
