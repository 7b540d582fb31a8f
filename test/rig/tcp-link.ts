// A loopback TCP forwarder between the writer and immudb (or the gRPC fault proxy): the "wire"
// of one pipeline incarnation. Down, it cuts every connection and refuses new ones (an outage
// as the writer sees it); closed, it is gone for good (the wire of a crashed process).
import { connect, createServer, type Server, type Socket } from 'node:net';

export class TcpLink {
  private down = false;
  private readonly sockets = new Set<Socket>();

  private constructor(private readonly server: Server, readonly port: number) {}

  static async open(upstream: { host: string; port: number }): Promise<TcpLink> {
    let link: TcpLink | undefined;
    const server = createServer((client) => {
      if (!link || link.down) return void client.destroy();
      const up = connect(upstream.port, upstream.host);
      link.track(client);
      link.track(up);
      client.pipe(up).pipe(client);
      const end = () => {
        client.destroy();
        up.destroy();
      };
      client.on('error', end).on('close', end);
      up.on('error', end).on('close', end);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const addr = server.address();
    if (!addr || typeof addr === 'string') throw new Error('tcp-link: no port');
    link = new TcpLink(server, addr.port);
    return link;
  }

  private track(s: Socket) {
    this.sockets.add(s);
    s.on('close', () => this.sockets.delete(s));
  }

  get isDown(): boolean {
    return this.down;
  }

  /** Cuts every connection; new ones are refused until up(). */
  setDown(down: boolean): void {
    this.down = down;
    if (down) for (const s of this.sockets) s.destroy();
  }

  async close(): Promise<void> {
    this.setDown(true);
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
