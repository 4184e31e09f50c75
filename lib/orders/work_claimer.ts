/**
 * This instance's part in sharing work: it keeps the instance's lease
 * alive, rescues the orders of instances that stopped, and claims unclaimed
 * orders into the queue as it has room.
 *
 * @module
 */

import type { Logger } from "@logtape/logtape";
import { delay } from "../async/delay.ts";
import type { Coordination, InstanceStatus } from "./coordination.ts";
import type { StoreHealth } from "./store_health.ts";

/** Options for {@linkcode WorkClaimer}. */
export interface WorkClaimerOptions {
  /** The coordination port: claims, lease, rescue. */
  coordination: Coordination;
  /** Where claimed orders go. */
  queue: {
    /** Free queue slots. */
    readonly room: number;
    /** Queues a claimed order; `false` when there is no room after all. */
    enqueueClaimed(id: string): boolean;
  };
  logger: Logger;
  /** Between heartbeats, and between looks for stopped instances. */
  heartbeatMs: number;
  /**
   * The backstop poll for unclaimed work, in milliseconds: a wake-up that
   * was lost (a NOTIFY dropped with its connection) delays work by at most
   * this long.
   */
  pollMs: number;
  /** Orders claimed at most per query (default 100). */
  batchSize?: number;
  /** Told of every order claimed. */
  onClaimed?: (count: number) => void;
  /** What each heartbeat tells the other instances. */
  status?: () => InstanceStatus;
  /** Told whether the lease is renewed in time and whether claims work. */
  health?: StoreHealth | undefined;
  /**
   * A heartbeat not answered within this long counts as a failure to renew
   * (default: two and a half heartbeats, half the lease as main sets it).
   */
  overdueMs?: number;
}

/**
 * Three loops. The heartbeat, on a timer of its own, so that nothing else
 * this instance waits for (a slow claim, a rescue held up by a locked
 * table) can make it look dead; the rescue of stopped instances' orders on
 * another; and the claim loop, which sleeps until woken (the store's
 * `onUnclaimed`), until the poll, or, when the queue was full while work
 * waited, until it has room.
 */
export class WorkClaimer {
  readonly #options: WorkClaimerOptions;
  readonly #stop = new AbortController();
  #wake: PromiseWithResolvers<void> = Promise.withResolvers();
  // Whether unclaimed orders may be waiting: set by a wake-up or a full
  // batch, cleared when a claim finds fewer than it asked for.
  #mayHaveWork = true;
  #wakes = 0;
  #loops: Promise<void>[] = [];

  /** Creates the claimer; {@linkcode start} runs it. */
  constructor(options: WorkClaimerOptions) {
    this.#options = options;
    options.coordination.onUnclaimed(() => this.wake());
  }

  /** Starts the loops. */
  start(): void {
    this.#loops = [this.#leaseLoop(), this.#rescueLoop(), this.#claimLoop()];
  }

  /** Looks for unclaimed work now. */
  wake(): void {
    this.#wakes++;
    this.#mayHaveWork = true;
    this.#wake.resolve();
  }

  /** Stops the loops (nothing more is claimed) and waits for them. */
  async stop(): Promise<void> {
    this.#stop.abort();
    this.#wake.resolve();
    await Promise.all(this.#loops);
  }

  async #leaseLoop(): Promise<void> {
    const { coordination, logger, heartbeatMs, health } = this.#options;
    const overdueMs = this.#options.overdueMs ?? heartbeatMs * 2.5;
    const signal = this.#stop.signal;
    let failing = false;
    while (!signal.aborted) {
      // A heartbeat that hangs (a partition) fails readiness before the
      // lease lapses, not when the query finally times out.
      const overdue = setTimeout(() => health?.recordLease(false), overdueMs);
      try {
        if (!(await coordination.heartbeat(this.#options.status?.()))) {
          logger.warn(
            "This instance was presumed dead; it has registered again and handed back what it still held",
          );
        }
        health?.recordLease(true);
        if (failing) logger.info("The lease is kept again");
        failing = false;
      } catch (error) {
        // A store that is down: other instances cannot see us either, and
        // our fenced writes will tell the workers if they rescued us.
        health?.recordLease(false);
        if (!failing) {
          logger.warn("Cannot renew this instance's lease: {error}", {
            error,
          });
        }
        failing = true;
      } finally {
        clearTimeout(overdue);
      }
      await delay(heartbeatMs, { signal }).catch(() => {});
    }
  }

  async #rescueLoop(): Promise<void> {
    const { coordination, logger, heartbeatMs } = this.#options;
    const signal = this.#stop.signal;
    let failing = false;
    while (!signal.aborted) {
      try {
        const rescued = await coordination.rescue();
        if (rescued > 0) {
          logger.warn("Rescued {rescued} orders of stopped instances", {
            rescued,
          });
        }
        if (failing) logger.info("Rescuing works again");
        failing = false;
      } catch (error) {
        if (!failing) {
          logger.warn(
            "Cannot rescue the orders of stopped instances: {error}",
            {
              error,
            },
          );
        }
        failing = true;
      }
      await delay(heartbeatMs, { signal }).catch(() => {});
    }
  }

  async #claimLoop(): Promise<void> {
    const { coordination, queue, logger, pollMs, onClaimed } = this.#options;
    const batchSize = this.#options.batchSize ?? 100;
    const signal = this.#stop.signal;
    let failing = false;
    while (!signal.aborted) {
      const wake = this.#wake = Promise.withResolvers();
      const room = Math.min(queue.room, batchSize);
      let waitMs = pollMs;
      if (room > 0 && this.#mayHaveWork) {
        const wakes = this.#wakes;
        try {
          const ids = await coordination.claimPending(room);
          // A wake-up during the claim may announce work it did not see.
          this.#mayHaveWork = ids.length === room || this.#wakes !== wakes;
          const refused = ids.filter((id) => !queue.enqueueClaimed(id));
          // Only when shutdown began between the claim and here.
          if (refused.length > 0) await coordination.release(refused);
          if (ids.length > refused.length) {
            onClaimed?.(ids.length - refused.length);
          }
          if (this.#mayHaveWork) waitMs = 0;
          this.#options.health?.recordClaims(true);
          failing = false;
        } catch (error) {
          this.#options.health?.recordClaims(false);
          if (!failing) {
            logger.warn("Cannot claim unclaimed orders: {error}", { error });
          }
          failing = true;
        }
      } else if (this.#mayHaveWork) {
        // Work waits and the queue is full: look again soon.
        waitMs = 20;
      } else {
        // The backstop: a lost wake-up costs at most one poll.
        this.#mayHaveWork = true;
      }
      if (waitMs === 0) continue;
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        wake.promise,
        new Promise<void>((resolve) => timer = setTimeout(resolve, waitMs)),
      ]);
      clearTimeout(timer);
    }
  }
}
