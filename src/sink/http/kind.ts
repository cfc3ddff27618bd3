import { ConfigError } from '../../model/errors.js';
import { openPool } from '../postgres/pool.js';
import type { SinkKind } from '../sink.js';
import { HTTP_CAPABILITIES, HttpSink } from './http-sink.js';
import type { HttpSettings } from './settings.js';

/**
 * An HTTP API: each change sent as a request, in order per key, with an idempotency key; the ledger
 * and the history kept in a control PostgreSQL database (destination.http.control).
 */
export const httpKind: SinkKind = {
  kind: 'http',
  schemes: ['http:', 'https:'],
  capabilities: HTTP_CAPABILITIES,
  open(url, options) {
    const settings = options.settings as HttpSettings | undefined;
    if (!settings)
      throw new ConfigError(
        'http-settings',
        'destination.http: missing — an HTTP destination needs its control database and requests',
        "add destination.http.control and each table's http section",
      );
    return new HttpSink(url, settings, openPool(settings.control, options), options.requests);
  },
};
