/**
 * This instance's part in sharing work: it keeps the instance's lease
 * alive, rescues the orders of instances that stopped, and claims unclaimed
 * orders into the queue as it has room.
 *
 * @module
 */

import type { Logger } from "@logtape/logtape";
import { delay } from "../async/delay.ts";
import type { InstanceStatus, OrderStore } from "./order_store.ts";

/** Options for {@linkcode WorkClaimer}. */
export interface WorkClaimerOptions {
  store: OrderStore;
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
}

/**
 * Two loops: the lease (heartbeat, then rescue) on a timer of its own, so
 * that a slow claim can never make this instance look dead; and the claim
 * loop, which sleeps until woken (the store's `onUnclaimed`), until the
 * poll, or, when the queue was full while work waited, until it has room.
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
    options.store.onUnclaimed(() => this.wake());
  }

  /** Starts both loops. */
  start(): void {
    this.#loops = [this.#leaseLoop(), this.#claimLoop()];
  }

  /** Looks for unclaimed work now. */
  wake(): void {
    this.#wakes++;
    this.#mayHaveWork = true;
    this.#wake.resolve();
  }

  /** Stops both loops (nothing more is claimed) and waits for them. */
  async stop(): Promise<void> {
    this.#stop.abort();
    this.#wake.resolve();
    await Promise.all(this.#loops);
  }

  async #leaseLoop(): Promise<void> {
    const { store, logger, heartbeatMs } = this.#options;
    const signal = this.#stop.signal;
    let failing = false;
    while (!signal.aborted) {
      try {
        if (!(await store.heartbeat(this.#options.status?.()))) {
          logger.warn(
            "This instance was presumed dead and its orders were rescued; it has registered again",
          );
        }
        const rescued = await store.rescue();
        if (rescued > 0) {
          logger.warn("Rescued {rescued} orders of stopped instances", {
            rescued,
          });
        }
        if (failing) logger.info("The lease is kept again");
        failing = false;
      } catch (error) {
        // A store that is down: other instances cannot see us either, and
        // our fenced writes will tell the workers if they rescued us.
        if (!failing) {
          logger.warn("Cannot renew this instance's lease: {error}", {
            error,
          });
        }
        failing = true;
      }
      await delay(heartbeatMs, { signal }).catch(() => {});
    }
  }

  async #claimLoop(): Promise<void> {
    const { store, queue, logger, pollMs, onClaimed } = this.#options;
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
          const ids = await store.claimPending(room);
          // A wake-up during the claim may announce work it did not see.
          this.#mayHaveWork = ids.length === room || this.#wakes !== wakes;
          const refused = ids.filter((id) => !queue.enqueueClaimed(id));
          // Only when shutdown began between the claim and here.
          if (refused.length > 0) await store.release(refused);
          if (ids.length > refused.length) {
            onClaimed?.(ids.length - refused.length);
          }
          if (this.#mayHaveWork) waitMs = 0;
          failing = false;
        } catch (error) {
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
