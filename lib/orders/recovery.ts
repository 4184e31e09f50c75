/**
 * Recovery on start: orders a previous process accepted but did not finish.
 *
 * @module
 */

import { InvalidTransitionError } from "./errors.ts";
import type { OrderStatus } from "./order.ts";
import type { Order } from "./order.ts";
import type { OrderStore } from "./order_store.ts";

const PAGE_SIZE = 100;

/** Visits the orders with `status`, oldest first, a page at a time. */
async function eachOrder(
  store: OrderStore,
  status: OrderStatus,
  visit: (order: Order) => Promise<boolean>,
): Promise<void> {
  let after: string | undefined;
  while (true) {
    const page = await store.list({ status, limit: PAGE_SIZE, after });
    for (const order of page.orders) {
      if (!(await visit(order))) return;
    }
    const last = page.orders.at(-1);
    if (!page.hasMore || !last) return;
    after = last.id;
  }
}

/**
 * Orders found `processing` were interrupted by a crash or a kill: records
 * that in their timeline and makes them `pending` again, so they run once
 * more (resuming after their last finished step). Their interrupted
 * attempt stays counted. Returns how many were found.
 */
export async function requeueInterrupted(store: OrderStore): Promise<number> {
  let count = 0;
  await eachOrder(store, "processing", async (order) => {
    try {
      await store.transition(order.id, {
        action: "recover",
        from: ["processing"],
        to: "pending",
        append: [{ type: "interrupted", attempt: order.attempts }],
      });
      count++;
    } catch (error) {
      if (!(error instanceof InvalidTransitionError)) throw error;
    }
    return true;
  });
  return count;
}

/** Options for {@linkcode feedPending}. */
export interface FeedOptions {
  store: OrderStore;
  /** Puts an id on the queue once it has room; `false` when shutting down. */
  requeue: (id: string) => Promise<boolean>;
  /** Only orders whose id sorts at or before this one (made before start). */
  until: string;
  /** Told of each order fed. */
  onFed?: () => void;
}

/**
 * Feeds the `pending` orders made before this process started into the
 * queue, oldest first, as the queue has room: a page of ids at a time, so a
 * backlog larger than the queue is processed completely without holding it
 * in memory, and never past the queue's bound. Stops early at shutdown
 * (what is left stays pending for the next start). Returns how many it fed.
 */
export async function feedPending(options: FeedOptions): Promise<number> {
  let fed = 0;
  await eachOrder(options.store, "pending", async (order) => {
    if (order.id > options.until) return false;
    if (!(await options.requeue(order.id))) return false;
    fed++;
    options.onFed?.();
    return true;
  });
  return fed;
}
