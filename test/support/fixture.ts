import type pg from 'pg';
import { createDemoSchema, demoDestinationSql } from '../../src/demo/schema.js';
import type { FlowRunner } from '../../src/flow/run-flow.js';
import { SourceCapture, pgClient, uniqueName, type Variant } from './capture.js';

/**
 * One test file's own world on the shared stack: a source schema, its destination schema, the
 * Debezium capture of it and the flow applying it — and the clean-up of all of them.
 */
export class SyncFixture {
  readonly schema: string;
  readonly destSchema: string;
  source!: pg.Client;
  dest!: pg.Client;
  capture?: SourceCapture;
  runner?: FlowRunner;

  constructor(prefix: string) {
    this.schema = uniqueName(prefix);
    this.destSchema = `${this.schema}_dst`;
  }

  /** Connects to both databases; with `demoTables`, creates the demo shop on both sides. */
  async open(options: { demoTables?: boolean } = {}): Promise<this> {
    this.source = await pgClient('trustsync_source');
    this.dest = await pgClient('trustsync_dest');
    if (options.demoTables) {
      await createDemoSchema(this.source, this.schema);
      await this.dest.query(demoDestinationSql(this.destSchema));
    }
    return this;
  }

  captureTables(tables: string[], variant: Variant, connectorVars: Record<string, string> = {}): SourceCapture {
    this.capture = new SourceCapture(this.schema, this.schema, tables, variant, connectorVars);
    return this.capture;
  }

  /** The flow file's table list: each captured table into the destination schema. */
  flowTables(tables: string[]): { topic: string; table: string }[] {
    return tables.map((t) => ({ topic: this.capture!.topic(t), table: `${this.destSchema}.${t}` }));
  }

  /** Source table ↔ destination table, for row-by-row comparison. */
  pairs(tables: string[]): [string, string][] {
    return tables.map((t) => [`${this.schema}.${t}`, `${this.destSchema}.${t}`]);
  }

  async close(): Promise<void> {
    await this.runner?.stop();
    await this.capture?.stop();
    await this.source?.query(`DROP SCHEMA IF EXISTS ${this.schema} CASCADE`);
    await this.dest?.query(`DROP SCHEMA IF EXISTS ${this.destSchema} CASCADE`);
    await this.source?.end();
    await this.dest?.end();
  }
}
