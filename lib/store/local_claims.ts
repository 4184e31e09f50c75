/**
 * Claims for a store that one process opens alone (memory, SQLite).
 *
 * @module
 */

import { ClaimLostError } from "../orders/errors.ts";
import { isTerminal, type OrderStatus } from "../orders/order.ts";
import type { Transition } from "../orders/order_store.ts";

/** What {@linkcode LocalClaims} asks of its store, synchronously. */
export interface LocalClaimsSource {
  /** Whether order `id` exists and is `pending`. */
  isPending(id: string): boolean;
  /**
   * Ids of `pending` orders after `after` (all when undefined), oldest
   * first, at most `limit`: the orders left by an earlier process. Absent
   * when the store starts empty (memory).
   */
  pendingAfter?(after: string | undefined, limit: number): string[];
}

/**
 * The claims of a single-process store, held in the process: a restart
 * leaves every unfinished order unclaimed, and the only stopped instance
 * there can be is the previous process. So unclaimed work is what the last
 * process left (scanned once, oldest first) plus what this one handed back.
 * Every method is synchronous, so a check and the change it guards cannot
 * interleave with another call.
 */
export class LocalClaims {
  readonly #source: LocalClaimsSource;
  readonly #held = new Set<string>();
  #handedBack: string[] = [];
  // The scan of orders left by an earlier process: its cursor, and whether
  // it reached the end (orders created since are claimed at creation).
  #scanAfter: string | undefined;
  #scanDone: boolean;
  #wakers: Array<() => void> = [];

  /** Claims backed by `source`. */
  constructor(source: LocalClaimsSource) {
    this.#source = source;
    this.#scanDone = source.pendingAfter === undefined;
  }

  /** Claims a new order. */
  claim(id: string): void {
    this.#held.add(id);
  }

  /** Whether this process holds order `id`'s claim. */
  holds(id: string): boolean {
    return this.#held.has(id);
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
  take(limit: number): string[] {
    const taken: string[] = [];
    const takeIf = (id: string) => {
      if (this.#held.has(id) || !this.#source.isPending(id)) return;
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
  release(ids: readonly string[]): number {
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

  /** Orders rescued from the previous process are unclaimed work. */
  rescued(ids: readonly string[]): void {
    this.#handedBack.push(...ids);
    if (ids.length > 0) this.#wake();
  }

  /** Calls `wake` when unclaimed work appears. */
  onUnclaimed(wake: () => void): void {
    this.#wakers.push(wake);
  }

  #wake(): void {
    for (const wake of this.#wakers) wake();
  }
}
