import { describe, expect, it } from 'vitest';
import { createServer } from 'node:net';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assertPortFree } from '../../src/stack/component.js';
import { kafka } from '../../src/stack/kafka.js';
import { assertJava } from '../../src/stack/java.js';
import { stackSettings } from '../../src/stack/settings.js';
import { StackError } from '../../src/model/errors.js';

describe('stack errors name the problem and the fix', () => {
  it('a port taken by another process', async () => {
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    const settings = stackSettings({ TRUSTSYNC_HOME: mkdtempSync(join(tmpdir(), 'ts-')), TRUSTSYNC_KAFKA_PORT: String(port) });
    try {
      const err = await assertPortFree(settings, kafka).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StackError);
      expect((err as StackError).problem).toContain(`port ${port} (kafka) is taken`);
      expect((err as StackError).fix).toContain('TRUSTSYNC_KAFKA_PORT');
    } finally {
      server.close();
    }
  });

  it('a free port passes', async () => {
    const settings = stackSettings({ TRUSTSYNC_HOME: mkdtempSync(join(tmpdir(), 'ts-')), TRUSTSYNC_KAFKA_PORT: '1' + '9999' });
    await expect(assertPortFree(settings, kafka)).resolves.toBeUndefined();
  });

  it('java missing from PATH', async () => {
    const err = await assertJava({ PATH: '/nonexistent' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StackError);
    expect((err as StackError).problem).toContain('java was not found');
    expect((err as StackError).fix).toContain('JAVA_HOME');
  });
});
