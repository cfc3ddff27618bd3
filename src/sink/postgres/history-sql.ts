import type { HistoryRow } from '../../model/history-row.js';

/*
 * trustsync.history (migrations/0001) is the append-only record of every decision, beside the data
 * in the destination database. Rows about a batch are written in the batch's own transaction: the
 * history never tells of a write that did not happen, and no write happens without its history.
 * They go in with COPY, in its text format, built here.
 */

/** PostgreSQL text cannot hold NUL; an error message quoting binary input might. */
const text = (v: string | null) => (v === null ? null : v.replaceAll('\u0000', '\\0'));
const bigintAsText = (_: string, x: unknown) => (typeof x === 'bigint' ? x.toString() : x);

const NULL = '\\N';

/** Text in COPY's format: the four characters the format gives meaning escaped. */
function copyText(v: string | null): string {
  if (v === null) return NULL;
  return /[\\\t\n\r]/.test(v) ? v.replace(/[\\\t\n\r]/g, (c) => COPY_ESCAPES[c]!) : v;
}
const COPY_ESCAPES: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' };

/** A value for a jsonb column. JSON text holds no raw tab or line break; only its backslashes need escaping. */
function copyJson(v: unknown): string {
  if (v === null || v === undefined) return NULL;
  let s: string;
  try {
    s = JSON.stringify(v);
  } catch {
    s = JSON.stringify(v, bigintAsText); // Avro longs are BigInts; a replacer is slow, so only then
  }
  return s.includes('\\') ? s.replaceAll('\\', '\\\\') : s;
}

/** Digits, enum words and such: nothing to escape. */
const copyPlain = (v: string | number | null): string => (v === null ? NULL : String(v));

/** Epoch milliseconds (a fraction for microseconds) as timestamptz literals, the last one kept: a batch's changes often share one. */
function timestampsInCopy(): (ms: number | null) => string {
  let lastMs: number | null = null;
  let last = NULL;
  return (ms) => {
    if (ms === null) return NULL;
    if (ms !== lastMs) {
      const micros = Math.round(ms * 1000);
      const whole = Math.floor(micros / 1000);
      lastMs = ms;
      last = `${new Date(whole).toISOString().slice(0, -1)}${String(micros - whole * 1000).padStart(3, '0')}+00`;
    }
    return last;
  };
}

/** The history columns a batch of rows fills, in the order of historyCopy's fields. */
const HISTORY_COPY_COLUMNS =
  'flow, target, entity, key, op, decision, reason, position, stored_position, origin_topic, origin_partition, origin_offset, tx_id, source_ts, capture_ts, new_values, fields, field, old_values, correlation_id, idempotency_key';

/**
 * COPY text written straight into buffers, a chunk at a time: the large values never join a bigger
 * string. Chunks start small and double up to 1 MB: a live flow writes many small batches, and a
 * fresh 1 MB chunk for each would keep the allocator busy.
 */
class CopyChunks {
  private static readonly FIRST = 1 << 16;
  private static readonly LARGEST = 1 << 20;
  private readonly chunks: Buffer[] = [];
  private buf = Buffer.allocUnsafe(CopyChunks.FIRST);
  private at = 0;

  put(s: string): void {
    const most = s.length * 3; // UTF-8 bytes per UTF-16 unit, at most
    if (this.at + most > this.buf.length) {
      const next = Math.min(this.buf.length * 2, CopyChunks.LARGEST);
      this.seal(); // the chunk is the stream's now: write on in a new one
      this.buf = Buffer.allocUnsafe(Math.max(next, most));
    }
    this.at += this.buf.write(s, this.at);
  }

  done(): Buffer[] {
    this.seal();
    return this.chunks;
  }

  private seal(): void {
    if (this.at > 0) this.chunks.push(this.buf.subarray(0, this.at));
    this.at = 0;
  }
}

/**
 * History rows in COPY's text format, one line each: COPY is PostgreSQL's cheapest way in, cheaper
 * for it than one INSERT parsing the rows out of a JSON document (docs/benchmarks.md).
 */
export function historyCopy(flow: string, rows: readonly HistoryRow[]): Buffer[] {
  const flowText = copyText(flow);
  const sourceTs = timestampsInCopy();
  const captureTs = timestampsInCopy();
  const out = new CopyChunks();
  for (const r of rows) {
    out.put(
      `${flowText}\t${copyText(r.target)}\t${copyText(r.entity)}\t${copyText(text(r.key))}\t${copyPlain(r.op)}\t${r.decision}\t${copyText(text(r.reason))}\t` +
        `${copyPlain(r.position)}\t${copyPlain(r.storedPosition)}\t${r.origin ? `${copyText(r.origin.topic)}\t${r.origin.partition}\t${r.origin.offset}` : `${NULL}\t${NULL}\t${NULL}`}\t` +
        `${copyText(r.txId)}\t${sourceTs(r.sourceTsMs)}\t${captureTs(r.captureTsMs)}\t`,
    );
    out.put(copyJson(r.newValues));
    out.put(
      `\t${copyJson(r.fields)}\t${copyText(r.field ?? null)}\t${copyJson(r.oldValues)}\t${copyText(r.correlationId ?? null)}\t${copyText(r.idempotencyKey ?? null)}\n`,
    );
  }
  return out.done();
}

/** historyCopy's rows into the history. */
export const HISTORY_COPY = `COPY trustsync.history (${HISTORY_COPY_COLUMNS}) FROM STDIN`;

/** A batch's mark; it inserts nothing when an earlier attempt of the batch committed (see BatchAudit.batchId). */
export const MARK_BATCH = 'INSERT INTO trustsync.batch_marks (batch_id, flow) VALUES ($1, $2) ON CONFLICT DO NOTHING';
/** Marks older than an hour: no batch is still being attempted that long. */
export const PURGE_BATCH_MARKS = "DELETE FROM trustsync.batch_marks WHERE marked_at < now() - interval '1 hour'";
