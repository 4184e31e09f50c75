/**
 * The HTTP listener, kept alive: `Deno.serve` with the two things it lacks,
 * a bound on how long a connection may sit without a request, and recovery
 * from running out of file descriptors.
 *
 * @module
 */

import type { Logger } from "@logtape/logtape";
import { doublingDelay } from "../async/backoff.ts";
import { connectionRemotePorts } from "./connections.ts";

// Binding the port again after a failure: 50 ms doubling to 1 s.
const RELISTEN_DELAY = doublingDelay(50, 1000);

/** What {@linkcode ResilientServer} needs. */
export interface ResilientServerOptions {
  hostname: string;
  /** 0 picks a free port; the listener keeps it across restarts. */
  port: number;
  /**
   * How long a connection may go without starting a request. Checked every
   * `idleTimeoutMs`: a connection held at two checks in a row that sent no
   * request between them is closed, unless a request is in progress on it.
   * 0 turns the check off. Only connections the process can see are ever
   * closed (see `remotePorts`).
   */
  idleTimeoutMs: number;
  logger: Logger;
  /**
   * Share the port with other processes that set it too (Linux
   * `SO_REUSEPORT`): the kernel spreads new connections among them. Off,
   * a port another process holds fails at once (default off).
   */
  sharePort?: boolean;
  /** Called once, when the first listener is bound. */
  onListen?: (addr: Deno.NetAddr) => void;
  /** Called when accepting fails and new connections are refused (EMFILE). */
  onAcceptFailure?: () => void;
  /** Waits between attempts to listen again after a failure (default: 50 ms doubling to 1 s). */
  retryDelayMs?: (attempt: number) => number;
  /**
   * The remote ports of the connections held on a port (default: read from
   * `/proc`); `undefined` when unknown. Unknown closes nothing: a busy
   * connection cannot be told from a stale one, and cutting busy ones fails
   * their clients' next requests. (Deno lets a process read its own
   * `/proc` entries only with `--allow-all`, which `deno task start` does
   * not grant, so there the idle check is off and a warning says so.)
   */
  remotePorts?: (localPort: number) => number[] | undefined;
}

type Handler = (
  request: Request,
  info: Deno.ServeHandlerInfo<Deno.NetAddr>,
) => Response | Promise<Response>;

type Listener = Deno.HttpServer<Deno.NetAddr>;

/**
 * Serves `handler` on one port for as long as it is not shut down.
 *
 * Why this exists: `Deno.serve` has no idle or header timeout, so a client
 * that opens connections and sends nothing holds them for ever; and when
 * `accept()` fails with "Too many open files" its accept loop ends, the
 * listener closes and `finished` rejects (an unhandled rejection ends the
 * process). Connections the dead listener had accepted are still served.
 *
 * Here a failed listener is replaced as soon as a descriptor is free again;
 * until then new connections are refused. And every `idleTimeoutMs` the
 * connections on the port are compared with the remote ports that started a
 * request since the check before: if any connection is stale, a fresh
 * listener is bound beside the current one (`SO_REUSEPORT`, so the port is
 * never closed) and every older listener is shut down gracefully — requests
 * in progress finish, connections without one are closed, and busy clients
 * reconnect to the new listener. With no stale connection nothing changes,
 * so a steadily busy server is never disturbed; where the connections
 * cannot be seen, nothing is ever closed.
 *
 * @example
 * ```ts
 * import { getLogger } from "@logtape/logtape";
 * import { ResilientServer } from "./server.ts";
 * const server = new ResilientServer(() => new Response("ok"), {
 *   hostname: "127.0.0.1", port: 0, idleTimeoutMs: 30_000,
 *   logger: getLogger(["order-service"]),
 * });
 * await server.shutdown();
 * ```
 */
export class ResilientServer {
  #handler: Handler;
  #options: ResilientServerOptions;
  #port: number;
  #current: Listener | undefined;
  /** Listeners that still hold connections: rotated out, or whose accept loop failed. */
  #older = new Set<Listener>();
  #shuttingDown = new Set<Promise<void>>();
  #closing = false;
  #listened = false;
  #failures = 0;
  #rotations = 0;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #checkTimer: ReturnType<typeof setInterval> | undefined;
  /** Remote ports that started a request since the last check. */
  #seen = new Set<number>();
  /** Remote ports of the connections held at the last check. */
  #held = new Set<number>();
  /** When the last check ran (performance.now()). */
  #checkedAt = performance.now();
  #warnedBlind = false;

  /**
   * Binds the first listener; throws when that fails (a bad address, a port
   * in use: `Deno.errors.AddrInUse`).
   */
  constructor(handler: Handler, options: ResilientServerOptions) {
    this.#handler = (request, info) => {
      this.#seen.add(info.remoteAddr.port);
      return handler(request, info);
    };
    this.#options = options;
    this.#port = options.port;
    if (Deno.build.os === "linux" && !options.sharePort) {
      // Our listeners share the port (SO_REUSEPORT), and so would any other
      // process that sets it: a second instance started on the same port
      // would silently split the traffic. Bind once without it first, so a
      // port in use fails here as it would without the sharing.
      this.#port = checkPort(options.hostname, options.port);
    }
    this.#listen();
    // Replacing a listener needs two on one port for a moment; only Linux
    // lets Deno.serve share a port (reusePort).
    if (options.idleTimeoutMs > 0 && Deno.build.os === "linux") {
      this.#checkTimer = setInterval(
        () => this.#closeStale(),
        options.idleTimeoutMs,
      );
    }
  }

  /** The bound port. */
  get port(): number {
    return this.#port;
  }

  /** Times stale connections were closed by replacing the listener. */
  get rotations(): number {
    return this.#rotations;
  }

  /**
   * Stops listening, lets requests in progress finish and closes every
   * connection, on every listener still open.
   */
  async shutdown(): Promise<void> {
    this.#closing = true;
    clearInterval(this.#checkTimer);
    clearTimeout(this.#retryTimer);
    const listeners = [...this.#older];
    if (this.#current) listeners.push(this.#current);
    this.#current = undefined;
    this.#older.clear();
    await Promise.all([
      ...this.#shuttingDown,
      ...listeners.map((listener) => listener.shutdown()),
    ]);
  }

  /** Binds a new listener and makes it the current one. */
  #listen(): void {
    const listener = Deno.serve({
      hostname: this.#options.hostname,
      port: this.#port,
      reusePort: Deno.build.os === "linux",
      onListen: () => {},
    }, this.#handler);
    this.#port = listener.addr.port;
    this.#current = listener;
    listener.finished.then(
      () => this.#older.delete(listener),
      (error) => {
        // The accept loop ended (EMFILE). Its connections are still served,
        // and closed when it is shut down at the next rotation.
        if (this.#current !== listener) return;
        this.#current = undefined;
        this.#older.add(listener);
        this.#scheduleRetry(error);
      },
    );
    if (!this.#listened) {
      this.#listened = true;
      this.#options.onListen?.(listener.addr);
    } else if (this.#failures > 0) {
      this.#options.logger.warning("Accepting connections again", {
        failures: this.#failures,
      });
      this.#failures = 0;
    }
  }

  /** Binds a new listener after a failure, or schedules another try. */
  #relisten(): void {
    if (this.#closing || this.#current !== undefined) return;
    try {
      this.#listen();
    } catch (error) {
      this.#scheduleRetry(error);
    }
  }

  #scheduleRetry(error: unknown): void {
    if (this.#closing) return;
    if (this.#failures === 0) {
      this.#options.logger.warning(
        "Cannot accept connections: {error}; refusing new ones until a descriptor is free",
        { error: String(error) },
      );
      this.#options.onAcceptFailure?.();
    }
    this.#failures++;
    const delay = (this.#options.retryDelayMs ?? RELISTEN_DELAY)(
      this.#failures,
    );
    clearTimeout(this.#retryTimer);
    this.#retryTimer = setTimeout(() => this.#relisten(), delay);
  }

  /** Whether some connection on the port started no request for a whole period. */
  #hasStale(): boolean {
    // Stale: held at the check before and at this one, with no request
    // started in between. So an idle keep-alive connection is closed
    // between one and two periods after its last request, and one that
    // never starts a request between one and two periods after it opened;
    // a connection accepted just before a check is never taken for stale.
    const seen = this.#seen;
    this.#seen = new Set();
    const before = this.#held;
    const now = performance.now();
    // A check that runs late followed a stall (a long GC pause, a stopped
    // process): no request could be seen during it, and the connections
    // waiting in the accept queue would be reset with the old listener.
    const late = now - this.#checkedAt > 1.5 * this.#options.idleTimeoutMs;
    this.#checkedAt = now;
    const held = (this.#options.remotePorts ?? connectionRemotePorts)(
      this.#port,
    );
    this.#held = new Set(held);
    if (held === undefined) {
      if (!this.#warnedBlind) {
        this.#warnedBlind = true;
        this.#options.logger.warning(
          "Idle connections are not closed: this process cannot read its connections from /proc (Deno allows that only with --allow-all)",
          { idleTimeoutMs: this.#options.idleTimeoutMs },
        );
      }
      return false;
    }
    if (late) return false;
    return held.some((port) => before.has(port) && !seen.has(port));
  }

  #closeStale(): void {
    if (this.#closing || !this.#hasStale()) return;
    const previous = this.#current;
    if (previous !== undefined) {
      // The successor is bound before the predecessor lets go of the port,
      // so no connection attempt meets a closed port. If it cannot be bound
      // (no descriptor free), the current listener stays for now.
      try {
        this.#listen();
      } catch {
        return;
      }
      this.#older.add(previous);
    }
    this.#rotations++;
    for (const listener of this.#older) {
      this.#older.delete(listener);
      const done = listener.shutdown().catch(() => {});
      this.#shuttingDown.add(done);
      void done.then(() => this.#shuttingDown.delete(done));
    }
  }
}

/**
 * Whether `error` is one binding an address can fail with for a reason
 * outside the program (in use, not this machine's, not allowed): start-up
 * reports those and exits 2.
 */
export function isListenError(error: unknown): error is Error {
  return error instanceof Deno.errors.AddrInUse ||
    error instanceof Deno.errors.AddrNotAvailable ||
    error instanceof Deno.errors.PermissionDenied;
}

/**
 * Binds `hostname:port` without `SO_REUSEPORT` and lets it go again, so that
 * a port already in use fails here (with {@linkcode isListenError}) before
 * listeners that share the port take it; returns the port, the one the
 * system picked for 0.
 */
export function checkPort(hostname: string, port: number): number {
  const probe = Deno.listen({ hostname, port });
  const bound = (probe.addr as Deno.NetAddr).port;
  probe.close();
  return bound;
}
