/**
 * The PostgreSQL store's own connection: it LISTENs for NOTIFY, carries the
 * heartbeat and the event reads, and comes back by itself when the
 * database drops it.
 *
 * @module
 */

// @ts-types="npm:@types/pg@8.23.1"
import pg from "pg";
import { doublingDelay } from "../async/backoff.ts";
import { StoreUnavailableError } from "../orders/errors.ts";

// A lost connection is retried 100 ms doubling to 2 s.
const RECONNECT = doublingDelay(100, 2000);

/** What {@linkcode PostgresListener} calls. */
export interface ListenerHandlers {
  /** A NOTIFY on one of the channels. */
  onNotify(channel: string, payload: string): void;
  /**
   * The connection is (again) listening: anything notified while it was
   * down was lost, so catch up now.
   */
  onConnect(): void;
}

/**
 * One connection of its own, outside the pool: a busy pool can then never
 * delay a heartbeat past the lease, and LISTEN needs a connection that
 * stays. Queries while it is down fail with `StoreUnavailableError`.
 */
export class PostgresListener {
  readonly #config: pg.ClientConfig;
  readonly #channels: readonly string[];
  readonly #handlers: ListenerHandlers;
  #client: pg.Client | undefined;
  #closed = false;
  #retry: ReturnType<typeof setTimeout> | undefined;

  /** A listener on `channels`; {@linkcode connect} opens it. */
  constructor(
    config: pg.ClientConfig,
    channels: readonly string[],
    handlers: ListenerHandlers,
  ) {
    this.#config = config;
    this.#channels = channels;
    this.#handlers = handlers;
  }

  /** Connects and listens; rejects when the first connection fails. */
  async connect(): Promise<void> {
    const client = new pg.Client(this.#config);
    // An "error" event nobody listens to ends the process.
    client.on("error", () => this.#lost(client));
    client.on("end", () => this.#lost(client));
    // PostgreSQL delivers a session's own NOTIFYs to it as well; this
    // connection sends its feed's, about events it has read already.
    // Taken as news, each set off a read, and its sequence number, never
    // to be read again, kept the feed re-reading every few milliseconds
    // for seconds (seen: ~170 reads a second under load, not ~50).
    let ownPid: number | undefined;
    client.on("notification", (message) => {
      if (message.processId === ownPid) return;
      this.#handlers.onNotify(message.channel, message.payload ?? "");
    });
    try {
      await client.connect();
      ownPid = (await client.query<{ pid: number }>(
        "SELECT pg_backend_pid() AS pid",
      )).rows[0]!.pid;
      for (const channel of this.#channels) {
        await client.query(`LISTEN "${channel}"`);
      }
    } catch (error) {
      await client.end().catch(() => {});
      throw error;
    }
    if (this.#closed) {
      await client.end().catch(() => {});
      return;
    }
    this.#client = client;
    this.#handlers.onConnect();
  }

  /** Runs a query on this connection. */
  async query<R extends pg.QueryResultRow>(
    text: string,
    values: unknown[] = [],
  ): Promise<pg.QueryResult<R>> {
    const client = this.#client;
    if (!client) {
      throw new StoreUnavailableError("the listening connection is down");
    }
    try {
      return await client.query<R>(text, values);
    } catch (error) {
      if (this.#client !== client) {
        throw new StoreUnavailableError((error as Error).message);
      }
      throw error;
    }
  }

  /** Closes the connection; it does not come back. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#retry);
    const client = this.#client;
    this.#client = undefined;
    await client?.end().catch(() => {});
  }

  #lost(client: pg.Client): void {
    if (this.#client !== client) return;
    this.#client = undefined;
    client.end().catch(() => {});
    this.#reconnect(1);
  }

  #reconnect(attempt: number): void {
    if (this.#closed) return;
    this.#retry = setTimeout(() => {
      this.connect().catch(() => this.#reconnect(attempt + 1));
    }, RECONNECT(attempt));
  }
}
