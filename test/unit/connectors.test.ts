import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { readConnectorFile, stackConnectorVars } from '../../src/stack/connectors.js';
import { describeGap, formatLsn } from '../../src/stack/postgres-source.js';
import { substitute, VariableMissing } from '../../src/shared/substitute.js';
import { PACKAGE_DIR, stackSettings } from '../../src/stack/settings.js';

describe('connector file variables', () => {
  it('takes a value from the environment before the default', () => {
    expect(substitute('a-${X:-d}-b', { X: 'v' }, 'f')).toBe('a-v-b');
    expect(substitute('a-${X:-d}-b', {}, 'f')).toBe('a-d-b');
  });

  it('names the file and the variable when one has no value', () => {
    expect(() => substitute('${MISSING}', {}, 'connectors/x.json')).toThrowError(VariableMissing);
    expect(() => substitute('${MISSING}', {}, 'connectors/x.json')).toThrowError(/connectors\/x\.json: \$\{MISSING\} has no value/);
  });

  it.each(['json', 'avro'])('the shipped %s source resolves with only the stack values', (variant) => {
    const c = readConnectorFile(join(PACKAGE_DIR, 'connectors', `postgres-source-${variant}.json`), stackConnectorVars(stackSettings({})));
    expect(c.config['connector.class']).toBe('io.debezium.connector.postgresql.PostgresConnector');
    expect(c.config['plugin.name']).toBe('pgoutput');
    expect(c.config['publication.autocreate.mode']).toBe('filtered');
    expect(c.config['tombstones.on.delete']).toBe('true');
    expect(Number(c.config['topic.creation.default.partitions'])).toBeGreaterThanOrEqual(6);
    expect(c.config['database.port']).toBe('15432');
    expect(c.config['slot.name']).toMatch(/^trustsync_/);
  });
});

describe('stack settings', () => {
  it('rejects a port that is not a number, naming the variable and the fix', () => {
    expect(() => stackSettings({ TRUSTSYNC_KAFKA_PORT: 'abc' })).toThrowError(/TRUSTSYNC_KAFKA_PORT=abc is not a usable port/);
  });
  it('binds to loopback', () => {
    expect(stackSettings({}).host).toBe('127.0.0.1');
  });
});

describe('capture gaps, as people read them', () => {
  it('writes an LSN the way PostgreSQL and Debezium print it', () => {
    expect(formatLsn(35835784n)).toBe('0/222CF88');
    expect(formatLsn((0x1an << 32n) | 0xbn)).toBe('1A/B');
  });

  it('says which slot failed how, and from where changes were lost', () => {
    expect(describeGap({ slot: 's1', problem: 'missing', resumeLsn: '0/222CF88' })).toBe(
      'replication slot s1 no longer exists; the changes committed after 0/222CF88 were never captured',
    );
    expect(describeGap({ slot: 's1', problem: 'ahead', resumeLsn: '0/10', slotRestartLsn: '0/20' })).toContain('keeps WAL only from 0/20');
    expect(describeGap({ slot: 's1', problem: 'lost', resumeLsn: '0/10' })).toContain('invalidated');
  });
});
