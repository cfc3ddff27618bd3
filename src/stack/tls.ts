import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { StackSettings } from './settings.js';
import { runCommand } from './processes.js';
import { StackError } from '../model/errors.js';

/** The local stack's certificates (PEM): one CA signs the servers' certificate and a client's. */
export interface StackCertificates {
  dir: string;
  /** What a client trusts: sslrootcert for PostgreSQL, the CA for Kafka. */
  ca: string;
  serverCert: string;
  serverKey: string;
  /** Kafka's PEM keystore: the server's key, then its certificate. */
  serverKeystore: string;
  /** A client certificate for listeners that ask for one (mutual TLS). */
  clientCert: string;
  clientKey: string;
}

/** Where the stack keeps its certificates (made at `stack up`, kept until `stack down --purge`). */
export function stackCertificates(s: StackSettings): StackCertificates {
  const dir = join(s.stateDir, 'tls');
  return {
    dir,
    ca: join(dir, 'ca.crt'),
    serverCert: join(dir, 'server.crt'),
    serverKey: join(dir, 'server.key'),
    serverKeystore: join(dir, 'server-keystore.pem'),
    clientCert: join(dir, 'client.crt'),
    clientKey: join(dir, 'client.key'),
  };
}

/**
 * Makes the stack's CA, a server certificate for its loopback address and a client certificate,
 * with openssl, unless they exist. Keys are unencrypted: a throwaway stack on loopback.
 */
export function ensureStackCertificates(s: StackSettings): Promise<StackCertificates> {
  const c = stackCertificates(s);
  // Components start side by side: the first asks, the others wait for the same certificates.
  let made = making.get(c.dir);
  if (!made) making.set(c.dir, (made = makeCertificates(s, c)));
  return made;
}

const making = new Map<string, Promise<StackCertificates>>();

async function makeCertificates(s: StackSettings, c: StackCertificates): Promise<StackCertificates> {
  if ([c.ca, c.serverKeystore, c.clientCert].every((f) => existsSync(f))) return c;
  mkdirSync(c.dir, { recursive: true });
  const openssl = (args: string[]) =>
    runCommand('openssl', args, { cwd: c.dir }).catch((err: Error) => {
      throw new StackError(
        `making the stack's TLS certificates failed: ${err.message}`,
        'install openssl (apt-get install openssl) and run `trustsync stack up` again.',
      );
    });
  const days = '3650';
  await openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', c.ca, '-days', days, '-subj', '/CN=trustsync local stack CA']);
  const signed = async (name: string, subject: string, extensions: string) => {
    writeFileSync(join(c.dir, `${name}.ext`), `${extensions}\n`);
    await openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject]);
    await openssl([
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      c.ca,
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      `${name}.crt`,
      '-days',
      days,
      '-extfile',
      `${name}.ext`,
    ]);
  };
  await signed('server', `/CN=${s.host}`, `subjectAltName=IP:${s.host},DNS:localhost\nextendedKeyUsage=serverAuth`);
  await signed('client', '/CN=trustsync', 'extendedKeyUsage=clientAuth');
  writeFileSync(c.serverKeystore, readFileSync(c.serverKey, 'utf8') + readFileSync(c.serverCert, 'utf8'));
  return c;
}
