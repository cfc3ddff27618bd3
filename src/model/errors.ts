/**
 * What kind of failure an error is, which decides what a caller does about it and how `trustsync`
 * exits: config (the flow file, an option, a variable: fix the input), stack (the local stack or a
 * program it needs), unavailable (a server that does not answer, retries run out), data (a record or
 * a schema trustsync will not apply: the flow stops on purpose), internal (a defect).
 */
export type ErrorFamily = 'config' | 'stack' | 'unavailable' | 'data' | 'internal';

/** Node's codes for a server that cannot be reached or went away on the way there. */
export const NETWORK_ERROR_CODES: ReadonlySet<string> = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);

/** Node's codes for a server certificate TLS does not trust (or a TLS failure of its own): a setting to fix, not an outage. */
export const UNTRUSTED_CERTIFICATE =
  /\b(SELF_SIGNED_CERT_IN_CHAIN|DEPTH_ZERO_SELF_SIGNED_CERT|UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT\w*|CERT_\w+|ERR_TLS_\w+|ERR_SSL_\w+)\b/;

/**
 * The process exit code of each family. 1 stays what it means for every command: a check found a
 * difference (drift, a capture gap, lag, an unhealthy stack).
 */
export const EXIT_CODES: Readonly<Record<ErrorFamily, number>> = { config: 2, stack: 3, unavailable: 4, data: 5, internal: 70 };

/**
 * The one error type trustsync raises about its work: a stable code, whether trying again can help,
 * its family, an optional fix a person can act on, and the underlying cause. Retriable failures are
 * retried with backoff; the rest go to the dead-letter topic (bad records) or stop the flow.
 */
export class TrustsyncError extends Error {
  override name = 'TrustsyncError';
  readonly fix: string | undefined;
  readonly family: ErrorFamily;
  constructor(
    readonly code: string,
    message: string,
    readonly retriable: boolean,
    options: { cause?: unknown; fix?: string; family?: ErrorFamily } = {},
  ) {
    super(message, { cause: options.cause });
    this.fix = options.fix;
    this.family = options.family ?? (retriable ? 'unavailable' : 'data');
  }
}

/** An input a person wrote (flow file, option, variable) that trustsync cannot use: every problem, with the fix. */
export class ConfigError extends TrustsyncError {
  override name = 'ConfigError';
  constructor(code: string, message: string, fix: string) {
    super(code, message, false, { fix, family: 'config' });
  }
}

/** The local stack, or a program it needs, is not as it must be: what is wrong and what to do. */
export class StackError extends TrustsyncError {
  override name = 'StackError';
  constructor(
    readonly problem: string,
    fix: string,
    cause?: unknown,
  ) {
    super('stack', problem, false, { fix, family: 'stack', cause });
  }
}

/** A position Debezium sent that trustsync cannot read: that record is dead-lettered. */
export class InvalidPosition extends TrustsyncError {
  override name = 'InvalidPosition';
  constructor(message: string) {
    super('bad-position', message, false, { family: 'data' });
  }
}

/** A transient failure that did not pass within the retry budget: the flow stops, nothing committed past it. */
export class RetriesExhausted extends TrustsyncError {
  override name = 'RetriesExhausted';
  constructor(
    readonly attempts: number,
    readonly last: Error,
  ) {
    super('retries-exhausted', `gave up after ${attempts} attempts: ${last.message}`, false, {
      cause: last,
      family: 'unavailable',
      fix: 'the cause above did not pass; fix it and restart the flow — nothing was committed, so nothing is lost.',
    });
  }
}

/** A record that cannot be turned into a change event. It goes to the DLQ; the partition flows on. */
export class UndecodableRecord extends TrustsyncError {
  override name = 'UndecodableRecord';
  constructor(
    code: 'malformed-json' | 'bad-magic-byte' | 'unknown-schema' | 'missing-key' | 'not-a-change-event' | 'bad-position' | 'avro-decode-failed',
    message: string,
    cause?: unknown,
  ) {
    super(code, message, false, { cause });
  }
}

/** The schema registry did not answer: block and retry, never dead-letter good records for it. */
export class RegistryUnavailable extends TrustsyncError {
  override name = 'RegistryUnavailable';
  constructor(message: string, cause?: unknown) {
    super('registry-unavailable', message, true, { cause });
  }
}

/** The destination could not take the write for a reason that may pass (connection lost, deadlock, …). */
export class TransientSinkError extends TrustsyncError {
  override name = 'TransientSinkError';
  constructor(message: string, cause?: unknown) {
    super('sink-transient', message, true, { cause });
  }
}

/**
 * The destination as a whole does not answer (an API down, or throttling past its attempts): the
 * partition waits for it past the retry budget (backpressure), and nothing is dead-lettered for it.
 */
export class DestinationUnavailable extends TrustsyncError {
  override name = 'DestinationUnavailable';
  constructor(message: string, cause?: unknown) {
    super('destination-unavailable', message, true, { cause });
  }
}

/** The flow is stopping: a batch waiting to be retried is given up, uncommitted, and read again by whoever runs next. */
export class FlowStopping extends TrustsyncError {
  override name = 'FlowStopping';
  constructor() {
    super('flow-stopping', 'the flow is stopping: the batch is read again from its last commit', false, { family: 'unavailable' });
  }
}

/** The destination rejects this row's data (type, constraint): the row goes to the DLQ, the rest applies. */
export class RowRejected extends TrustsyncError {
  override name = 'RowRejected';
  constructor(message: string, cause?: unknown) {
    super('row-rejected', message, false, { cause });
  }
}

/** The source's shape changed in a way the destination cannot follow without losing data: the flow stops. */
export class SchemaIncompatible extends TrustsyncError {
  override name = 'SchemaIncompatible';
  constructor(message: string, fix: string) {
    super('schema-incompatible', message, false, { fix });
  }
}

/** A TRUNCATE arrived and the flow's policy is to stop rather than wipe the destination. */
export class TruncateStopped extends TrustsyncError {
  override name = 'TruncateStopped';
  constructor(message: string) {
    super('truncate-stopped', message, false, {
      family: 'data',
      fix: 'set `truncate: apply` (wipe the destination table too) or `truncate: skip` in the flow file, then restart the flow.',
    });
  }
}
