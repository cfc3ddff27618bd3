import { createServer, connect, type Server, type Socket } from 'node:net';

/** A simple-protocol Query message of exactly `COMMIT` (what node-postgres sends for client.query('COMMIT')). */
const COMMIT_QUERY = Buffer.concat([Buffer.from([0x51, 0, 0, 0, 11]), Buffer.from('COMMIT\0')]);
/** CommandComplete with tag COMMIT: the server's word that the transaction is durable. */
const COMMIT_DONE = Buffer.concat([Buffer.from([0x43, 0, 0, 0, 11]), Buffer.from('COMMIT\0')]);

/**
 * A TCP relay in front of a real PostgreSQL that, once armed, lets one COMMIT through to the server
 * and cuts the client's connection the moment the server answers it: the transaction is durable, and
 * the client only sees its connection lost — a COMMIT whose outcome it cannot know.
 */
export class CommitCut {
  private server?: Server;
  private armed = false;
  private readonly sockets = new Set<Socket>();
  /** COMMITs the server confirmed that the client never heard of. */
  cut = 0;

  constructor(private readonly upstreamPort: number) {}

  async listen(): Promise<number> {
    this.server = createServer((client) => this.relay(client));
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', () => r()));
    return (this.server.address() as { port: number }).port;
  }

  /** The next COMMIT the server confirms is not passed on. */
  arm(): void {
    this.armed = true;
  }

  private relay(client: Socket): void {
    const upstream = connect(this.upstreamPort, '127.0.0.1');
    this.sockets.add(client).add(upstream);
    let commitSent = false;
    client.on('data', (d) => {
      if (this.armed && d.includes(COMMIT_QUERY)) {
        this.armed = false;
        commitSent = true;
      }
      upstream.write(d);
    });
    upstream.on('data', (d) => {
      if (commitSent && d.includes(COMMIT_DONE)) {
        this.cut++;
        client.destroy();
        upstream.destroy();
        return;
      }
      client.write(d);
    });
    const end = () => {
      client.destroy();
      upstream.destroy();
      this.sockets.delete(client);
      this.sockets.delete(upstream);
    };
    client.on('close', end).on('error', end);
    upstream.on('close', end).on('error', end);
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }
}
