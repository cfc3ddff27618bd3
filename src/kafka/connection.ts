import { readFileSync } from 'node:fs';
import { Kafka, logLevel, type KafkaConfig, type SASLOptions } from 'kafkajs';
import { z } from 'zod';
import { ConfigError, UNTRUSTED_CERTIFICATE } from '../model/errors.js';
import { readSecret, secretRef } from '../shared/secrets.js';

/** TLS to the brokers: the CAs to trust, a client certificate where the listener asks for one. */
export const kafkaTlsSpec = z
  .strictObject({
    /** A PEM file of the CAs that sign the brokers' certificates; absent: the system's. */
    ca: z.string().min(1).optional(),
    /** The client certificate (PEM file), for a listener that requires one. */
    cert: z.string().min(1).optional(),
    /** Its private key: a secret (a file or a variable). */
    key: secretRef.optional(),
    /** The name the brokers' certificates must carry, when not the broker address's host. */
    servername: z.string().min(1).optional(),
    /** false: any certificate the CA signed, whatever host it names (a test cluster behind one name). */
    checkHostname: z.boolean().default(true),
  })
  .refine((t) => (t.cert === undefined) === (t.key === undefined), {
    message: 'a client certificate needs its key, and a key its certificate: give cert and key both',
  });

export const kafkaSaslSpec = z.strictObject({
  mechanism: z.enum(['plain', 'scram-sha-256', 'scram-sha-512']),
  username: z.string().min(1),
  password: secretRef,
});

export type KafkaTls = z.infer<typeof kafkaTlsSpec>;
export type KafkaSasl = z.infer<typeof kafkaSaslSpec>;

/** How a flow reaches its brokers (the flow file's source section). */
export interface KafkaConnection {
  brokers: string[];
  tls?: KafkaTls;
  sasl?: KafkaSasl;
}

/** A PEM file a TLS setting names, read when the connection opens; `field` names it for the message. */
function pemFile(path: string, field: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError('tls-file', `${field}: ${path} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`, 'name a readable PEM file');
  }
}

/** The kafkajs options of a connection: brokers, TLS and SASL, secrets read now and kept out of every message. */
export function kafkaOptions(c: KafkaConnection): Pick<KafkaConfig, 'brokers' | 'ssl' | 'sasl'> {
  const tls = c.tls;
  return {
    brokers: c.brokers,
    ...(tls
      ? {
          ssl: {
            rejectUnauthorized: true,
            ...(tls.ca ? { ca: [pemFile(tls.ca, 'source.tls.ca')] } : {}),
            ...(tls.cert ? { cert: pemFile(tls.cert, 'source.tls.cert'), key: readSecret(tls.key!, 'source.tls.key') } : {}),
            ...(tls.servername ? { servername: tls.servername } : {}),
            ...(tls.checkHostname ? {} : { checkServerIdentity: () => undefined }),
          },
        }
      : {}),
    ...(c.sasl
      ? { sasl: { mechanism: c.sasl.mechanism, username: c.sasl.username, password: readSecret(c.sasl.password, 'source.sasl.password') } as SASLOptions }
      : {}),
  };
}

/**
 * A failure to reach the brokers told as what to fix, when it is one: a SASL password or user the
 * brokers refuse, or a certificate TLS does not trust. Undefined for anything else.
 */
function kafkaConnectionProblem(err: unknown, c: KafkaConnection): ConfigError | undefined {
  const chain: string[] = [];
  for (let e = err as (Error & { cause?: unknown; originalError?: unknown }) | undefined; e && chain.length < 5; e = (e.cause ?? e.originalError) as typeof e)
    chain.push(`${e.name ?? ''} ${e.message ?? ''} ${(e as { code?: string }).code ?? ''}`);
  const text = chain.join(' | ');
  if (/SASL.*authentication failed|Authentication failed|SaslAuthenticate/i.test(text))
    return new ConfigError(
      'kafka-authentication',
      `source.sasl: the brokers ${c.brokers.join(', ')} refused ${c.sasl ? `${c.sasl.mechanism} user ${c.sasl.username}` : 'the connection'}: wrong username or password`,
      'check source.sasl.username, the secret source.sasl.password names, and the mechanism the listener accepts',
    );
  if (!c.tls) return undefined;
  const fix =
    'check that source.tls.ca names the CA that signed the brokers’ certificates, and source.tls.cert and key where the listener requires a client certificate';
  const refused = /alert (bad certificate|certificate required|unknown ca|handshake failure)/i.exec(text);
  if (refused)
    return new ConfigError(
      'kafka-tls',
      `source.tls: the brokers ${c.brokers.join(', ')} refused the TLS handshake (${refused[0]}): no client certificate, or one their CA did not sign`,
      fix,
    );
  const untrusted = UNTRUSTED_CERTIFICATE.exec(text);
  if (untrusted) return new ConfigError('kafka-tls', `source.tls: the certificate of ${c.brokers.join(', ')} is not trusted (${untrusted[0]})`, fix);
  return undefined;
}

/**
 * One attempt to reach the brokers, before the client that retries: a password or certificate they
 * refuse is told now, in one line, rather than after every retry. Anything else is left to it.
 */
export async function checkKafkaCredentials(c: KafkaConnection): Promise<void> {
  if (!c.tls && !c.sasl) return;
  const admin = new Kafka({
    clientId: 'trustsync-credentials',
    ...kafkaOptions(c),
    logLevel: logLevel.NOTHING,
    connectionTimeout: 5000,
    retry: { retries: 0 },
  }).admin();
  try {
    await admin.connect();
  } catch (err) {
    const problem = kafkaConnectionProblem(err, c);
    if (problem) throw problem;
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}
