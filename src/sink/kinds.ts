import { TrustsyncError } from '../model/errors.js';
import { httpKind } from './http/kind.js';
import { mariadbKind } from './mariadb/kind.js';
import { postgresKind } from './postgres/kind.js';
import type { Sink, SinkKind, SinkOptions } from './sink.js';
import type { SourceDatabase } from './source.js';

/** Every kind of destination trustsync writes. A new kind is a folder beside postgres/ and a line here. */
export const SINK_KINDS: readonly SinkKind[] = [postgresKind, mariadbKind, httpKind];

/** A URL's scheme with its colon, lower case (`postgres:`), or '' when it has none. */
export function schemeOf(url: string): string {
  const match = /^([a-z][a-z0-9+.-]*:)/i.exec(url);
  return match ? match[1]!.toLowerCase() : '';
}

/** The kind serving this URL's scheme, if any. */
export function sinkKindFor(url: string): SinkKind | undefined {
  const scheme = schemeOf(url);
  return SINK_KINDS.find((k) => k.schemes.includes(scheme));
}

/** The schemes trustsync writes, for messages: `postgres://, postgresql://`. */
export function supportedSchemes(): string {
  return SINK_KINDS.flatMap((k) => k.schemes.map((s) => `${s}//`)).join(', ');
}

/** Opens the destination a URL names (the flow file was checked at start: an unknown scheme does not get here). */
export function openSink(url: string, options: SinkOptions): Sink {
  const kind = sinkKindFor(url);
  if (!kind)
    throw new TrustsyncError('unsupported-destination', `destination.url: ${schemeOf(url) || 'this URL'} is not a destination trustsync writes`, false, {
      fix: `use one of ${supportedSchemes()}`,
    });
  return kind.open(url, options);
}

/** The schemes trustsync reads as a source database (canaries, reconcile), for messages. */
export function supportedSourceSchemes(): string {
  return SINK_KINDS.filter((k) => k.openSource)
    .flatMap((k) => k.schemes.map((s) => `${s}//`))
    .join(', ');
}

/** Opens the source database a URL names (source.database). */
export function openSourceDatabase(url: string, options: SinkOptions): SourceDatabase {
  const kind = sinkKindFor(url);
  if (!kind?.openSource)
    throw new TrustsyncError('unsupported-source', `source.database: ${schemeOf(url) || 'this URL'} is not a source database trustsync reads`, false, {
      fix: `use one of ${supportedSourceSchemes()}`,
    });
  return kind.openSource(url, options);
}
