/**
 * The one error type trustsync raises about its work: a stable code, whether trying again can help,
 * and the underlying cause. Retriable failures are retried with backoff; the rest go to the
 * dead-letter topic (bad records) or stop the flow (bad configuration or schema).
 */
export class TrustsyncError extends Error {
  override name = 'TrustsyncError';
  constructor(
    readonly code: string,
    message: string,
    readonly retriable: boolean,
    options: { cause?: unknown; fix?: string } = {},
  ) {
    super(message, { cause: options.cause });
    this.fix = options.fix;
  }
  readonly fix: string | undefined;
}

/** A record that cannot be turned into a change event. It goes to the DLQ; the partition flows on. */
export class UndecodableRecord extends TrustsyncError {
  override name = 'UndecodableRecord';
  constructor(code: 'malformed-json' | 'bad-magic-byte' | 'unknown-schema' | 'missing-key' | 'not-a-change-event' | 'bad-position' | 'avro-decode-failed', message: string, cause?: unknown) {
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
    super('truncate-stopped', message, false, { fix: 'set `truncate: apply` (wipe the destination table too) or `truncate: skip` in the flow file, then restart the flow.' });
  }
}
