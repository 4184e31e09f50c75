/**
 * A fault-injecting TCP proxy for tests: put it between an instance and
 * PostgreSQL, then cut the path the ways a network does. `blackHole()`
 * stops forwarding in both directions without closing anything (a
 * partition: the peers keep their sockets and hear nothing), `resume()`
 * forwards again what was held back, in order, and `reset()` closes every
 * connection at once (an RST seen by both peers).
 *
 * @module
 */

/** A running proxy on a free loopback port. */
export class TcpProxy {
  readonly #listener: Deno.TcpListener;
  readonly #target: Deno.ConnectOptions;
  readonly #pairs = new Set<{ client: Deno.Conn; server: Deno.Conn }>();
  readonly #pumps = new Set<Promise<void>>();
  #holding = false;
  #resumed = Promise.withResolvers<void>();
  #accepting: Promise<void>;

  /** Listens on a free loopback port and forwards to `target`. */
  constructor(target: Deno.ConnectOptions) {
    this.#target = target;
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.#accepting = this.#accept();
  }

  /** The port clients connect to. */
  get port(): number {
    return this.#listener.addr.port;
  }

  /** Connections open through the proxy. */
  get connections(): number {
    return this.#pairs.size;
  }

  /** Stops forwarding (new connections are accepted and held too). */
  blackHole(): void {
    if (this.#holding) return;
    this.#holding = true;
    this.#resumed = Promise.withResolvers();
  }

  /** Forwards again, first what was held back. */
  resume(): void {
    this.#holding = false;
    this.#resumed.resolve();
  }

  /** Closes every connection through the proxy. */
  reset(): void {
    for (const pair of this.#pairs) this.#closePair(pair);
  }

  /** Closes the listener and every connection, and waits for the pumps. */
  async close(): Promise<void> {
    this.resume();
    this.#listener.close();
    this.reset();
    await this.#accepting;
    await Promise.all(this.#pumps);
  }

  async #accept(): Promise<void> {
    try {
      for await (const client of this.#listener) {
        this.#connect(client);
      }
    } catch {
      // Closed.
    }
  }

  #connect(client: Deno.Conn): void {
    const pump = (async () => {
      let server: Deno.Conn;
      try {
        server = await Deno.connect(this.#target);
      } catch {
        client.close();
        return;
      }
      const pair = { client, server };
      this.#pairs.add(pair);
      await Promise.all([
        this.#pipe(client, server, pair),
        this.#pipe(server, client, pair),
      ]);
    })();
    this.#pumps.add(pump);
    void pump.finally(() => this.#pumps.delete(pump));
  }

  async #pipe(
    from: Deno.Conn,
    to: Deno.Conn,
    pair: { client: Deno.Conn; server: Deno.Conn },
  ): Promise<void> {
    const buffer = new Uint8Array(64 * 1024);
    try {
      for (;;) {
        const read = await from.read(buffer);
        if (read === null) break;
        // Held while black-holed: the bytes arrive late, or never if the
        // connection is reset first.
        while (this.#holding) await this.#resumed.promise;
        if (!this.#pairs.has(pair)) break;
        let written = 0;
        while (written < read) {
          written += await to.write(buffer.subarray(written, read));
        }
      }
    } catch {
      // Either side closed or reset.
    }
    this.#closePair(pair);
  }

  #closePair(pair: { client: Deno.Conn; server: Deno.Conn }): void {
    if (!this.#pairs.delete(pair)) return;
    for (const conn of [pair.client, pair.server]) {
      try {
        conn.close();
      } catch {
        // Already closed.
      }
    }
  }
}
