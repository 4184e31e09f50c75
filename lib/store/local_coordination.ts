/**
 * The coordination of a store that one process opens alone (memory,
 * SQLite): claims held in the process, and the one rescue those stores
 * share.
 *
 * @module
 */

import { ClaimLostError, InvalidTransitionError } from "../orders/errors.ts";
import { isTerminal, type OrderStatus } from "../orders/order.ts";
import type {
  Coordination,
  InstanceInfo,
  OrderRepository,
  Transition,
} from "../orders/order_store.ts";

/**
 * What {@linkcode LocalCoordination} asks of its store. The two checks are
 * synchronous, so that a claim's check and the change it guards cannot
 * interleave with another call; they throw `StoreUnavailableError` when the
 * store cannot be read.
 */
export interface LocalOrders
  extends Pick<OrderRepository, "list" | "transition"> {
  /** Whether order `id` exists and is `pending`. */
  isPending(id: string): boolean;
  /**
   * Ids of `pending` orders after `after` (all when undefined), oldest
   * first, at most `limit`: the orders left by an earlier process. Absent
   * when the store starts empty (memory): then nothing is left to scan or
   * rescue.
   */
  pendingAfter?(after: string | undefined, limit: number): string[];
  /**
   * Whether this process works order `id`. Absent: every order. Isolates
   * sharing one SQLite file (`PARALLEL`) each work the orders they own,
   * and leave the rest, left over or processing, to their owners.
   */
  owns?(id: string): boolean;
}

/**
 * The coordination of a single-process store. Claims are held in the
 * process: a restart leaves every unfinished order unclaimed, and the only
 * stopped instance there can be is the previous process. So unclaimed work
 * is what the last process left (scanned once, oldest first) plus what this
 * one handed back, and rescue looks once, at start.
 *
 * The store calls the synchronous half (`claim`, `refuse`, `settle`) inside
 * its own atomic write; the service calls the {@linkcode Coordination} half.
 */
export class LocalCoordination implements Coordination {
  /** One process alone opens the store: nothing to hand back at shutdown. */
  readonly shared = false;
  /** None: the store's wrapper publishes this process's changes. */
  readonly changeFeed = undefined;
  readonly #source: LocalOrders;
  readonly #held = new Set<string>();
  #handedBack: string[] = [];
  // The scan of orders left by an earlier process: its cursor, and whether
  // it reached the end (orders created since are claimed at creation).
  #scanAfter: string | undefined;
  #scanDone: boolean;
  #wakers: Array<() => void> = [];
  #rescued: boolean;

  /** The coordination of the store `source`. */
  constructor(source: LocalOrders) {
    this.#source = source;
    this.#scanDone = source.pendingAfter === undefined;
    this.#rescued = source.pendingAfter === undefined;
  }

  /** Claims a new order. */
  claim(id: string): void {
    this.#held.add(id);
  }

  /** The fencing check of `change`: why it may not apply, if it may not. */
  refuse(id: string, change: Transition): ClaimLostError | undefined {
    return change.claimed && !this.#held.has(id)
      ? new ClaimLostError(id, change.action)
      : undefined;
  }

  /** Records a committed change: a finished order needs no claim. */
  settle(id: string, status: OrderStatus): void {
    if (isTerminal(status)) this.#held.delete(id);
  }

  /** Claims up to `limit` unclaimed pending orders, oldest first. */
  claimPending(limit: number): Promise<string[]> {
    return settled(() => this.#take(limit));
  }

  #take(limit: number): string[] {
    const taken: string[] = [];
    const takeIf = (id: string) => {
      if (!this.#owns(id) || this.#held.has(id)) return;
      if (!this.#source.isPending(id)) return;
      this.#held.add(id);
      taken.push(id);
    };
    while (taken.length < limit && !this.#scanDone) {
      const page = this.#source.pendingAfter!(this.#scanAfter, 100);
      if (page.length === 0) this.#scanDone = true;
      for (const id of page) {
        this.#scanAfter = id;
        takeIf(id);
        if (taken.length === limit) break;
      }
    }
    if (taken.length < limit && this.#handedBack.length > 0) {
      this.#handedBack.sort();
      const rest = this.#handedBack.splice(limit - taken.length);
      for (const id of this.#handedBack) takeIf(id);
      this.#handedBack = rest;
    }
    return taken;
  }

  /** Hands back the pending ones among `ids`; how many. */
  release(ids: readonly string[]): Promise<number> {
    return settled(() => this.#release(ids));
  }

  #release(ids: readonly string[]): number {
    let count = 0;
    for (const id of ids) {
      if (!this.#held.has(id) || !this.#source.isPending(id)) continue;
      this.#held.delete(id);
      this.#handedBack.push(id);
      count++;
    }
    if (count > 0) this.#wake();
    return count;
  }

  /** Queues the unheld pending ones among `ids` for the claimer. */
  offer(ids: readonly string[]): Promise<void> {
    return settled(() => {
      const offered = ids.filter((id) =>
        this.#owns(id) && !this.#held.has(id) && this.#source.isPending(id)
      );
      this.#handedBack.push(...offered);
      if (offered.length > 0) this.#wake();
    });
  }

  /** Always `true`: one process, no one else to presume it dead. */
  heartbeat(): Promise<boolean> {
    return Promise.resolve(true);
  }

  /** None: no other instance shares the store. */
  instances(): Promise<InstanceInfo[]> {
    return Promise.resolve([]);
  }

  /**
   * Orders found `processing` that this process does not hold were
   * interrupted by a crash or a kill of the previous one: each gets an
   * `interrupted` entry and becomes `pending` again. Only the first call
   * looks: every order processing after it was started by this process,
   * and the lease loop calls this every second.
   */
  async rescue(): Promise<number> {
    if (this.#rescued) return 0;
    const rescued: string[] = [];
    let after: string | undefined;
    while (true) {
      const page = await this.#source.list({
        status: "processing",
        limit: 100,
        after,
      });
      for (const order of page.orders) {
        if (this.#held.has(order.id) || !this.#owns(order.id)) continue;
        try {
          await this.#source.transition(order.id, {
            action: "recover",
            from: ["processing"],
            to: "pending",
            append: [{ type: "interrupted", attempt: order.attempts }],
          });
          rescued.push(order.id);
        } catch (error) {
          if (!(error instanceof InvalidTransitionError)) throw error;
        }
      }
      after = page.orders.at(-1)?.id;
      if (!page.hasMore || after === undefined) break;
    }
    // Rescued orders are unclaimed work.
    this.#handedBack.push(...rescued);
    this.#rescued = true;
    if (rescued.length > 0) this.#wake();
    return rescued.length;
  }

  #owns(id: string): boolean {
    return this.#source.owns?.(id) ?? true;
  }

  /** Calls `wake` when unclaimed work appears. */
  onUnclaimed(wake: () => void): void {
    this.#wakers.push(wake);
  }

  #wake(): void {
    for (const wake of this.#wakers) wake();
  }
}

/** `run()`'s value, or its error, as a promise. */
function settled<T>(run: () => T): Promise<T> {
  try {
    return Promise.resolve(run());
  } catch (error) {
    return Promise.reject(error);
  }
}
