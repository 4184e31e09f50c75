/**
 * The default, in-memory order store.
 *
 * @module
 */

import {
  IdempotencyConflictError,
  InvalidTransitionError,
  OrderNotFoundError,
  StoreFullError,
} from "../errors.ts";
import {
  isTerminal,
  type NewOrder,
  type Order,
  sameNewOrder,
} from "../order.ts";
import { createOrderIdFactory } from "../order_id.ts";
import type {
  CreateOptions,
  CreateResult,
  ListOptions,
  ListPage,
  OrderStore,
  Transition,
} from "./store.ts";

/** Options for {@linkcode MemoryStore}. */
export interface MemoryStoreOptions {
  /** The most orders kept; the oldest finished ones are evicted past it. */
  maxOrders?: number;
  /** The clock, in epoch milliseconds (injected by tests). */
  now?: () => number;
  /** The id generator; ids must sort in creation order. */
  newId?: () => string;
}

/**
 * Orders in a `Map`, bounded by `maxOrders`.
 *
 * Atomicity: every method does its whole read-modify-write in one
 * synchronous turn of the event loop (there is no `await` between reading
 * an order and writing it back), so no other task can interleave and the
 * Map needs no lock of its own. Orders are replaced, never mutated in place,
 * so a snapshot handed to a reader never changes under it.
 *
 * @example
 * ```ts
 * import { MemoryStore } from "./memory.ts";
 * const store = new MemoryStore({ maxOrders: 10 });
 * const { order } = await store.create({ customer_id: "c", restaurant_id: "r", items: ["x"] });
 * await store.get(order.id);
 * ```
 */
export class MemoryStore implements OrderStore {
  readonly #maxOrders: number;
  readonly #now: () => number;
  readonly #newId: () => string;
  #orders = new Map<string, Order>();
  #byKey = new Map<string, string>();
  #keyOf = new Map<string, string>();
  // Ids in creation order (which is also id order). Evicted ids stay here as
  // tombstones until they outnumber live ones, so eviction is O(1) amortised
  // and cursors can binary-search.
  #ids: string[] = [];
  #evictFrom = 0;

  /** Creates an empty store. */
  constructor(options: MemoryStoreOptions = {}) {
    const maxOrders = options.maxOrders ?? 1_000_000;
    if (!Number.isInteger(maxOrders) || maxOrders < 1) {
      throw new RangeError(
        `Cannot create store: maxOrders must be a positive integer, received "${maxOrders}"`,
      );
    }
    this.#maxOrders = maxOrders;
    this.#now = options.now ?? Date.now;
    this.#newId = options.newId ?? createOrderIdFactory();
  }

  /** The number of orders held. */
  get size(): number {
    return this.#orders.size;
  }

  create(input: NewOrder, options: CreateOptions = {}): Promise<CreateResult> {
    const key = options.idempotencyKey;
    if (key !== undefined) {
      const existingId = this.#byKey.get(key);
      const existing = existingId && this.#orders.get(existingId);
      if (existing) {
        if (!sameNewOrder(existing, input)) {
          return Promise.reject(new IdempotencyConflictError(key, existing.id));
        }
        return Promise.resolve({ order: existing, created: false });
      }
    }
    if (this.#orders.size >= this.#maxOrders && !this.#evictOne()) {
      return Promise.reject(new StoreFullError(this.#maxOrders));
    }
    const now = this.#now();
    const order: Order = {
      id: this.#newId(),
      customer_id: input.customer_id,
      restaurant_id: input.restaurant_id,
      items: [...input.items],
      status: "pending",
      created_at: now,
      updated_at: now,
      attempts: 0,
      failure_reason: null,
      cancel_requested: false,
      timeline: [{ at: now, type: "status", status: "pending" }],
    };
    this.#orders.set(order.id, order);
    this.#ids.push(order.id);
    if (key !== undefined) {
      this.#byKey.set(key, order.id);
      this.#keyOf.set(order.id, key);
    }
    return Promise.resolve({ order, created: true });
  }

  get(id: string): Promise<Order | undefined> {
    return Promise.resolve(this.#orders.get(id));
  }

  getByIdempotencyKey(key: string): Promise<Order | undefined> {
    const id = this.#byKey.get(key);
    return Promise.resolve(id === undefined ? undefined : this.#orders.get(id));
  }

  list(options: ListOptions): Promise<ListPage> {
    const orders: Order[] = [];
    let index = options.after === undefined
      ? this.#evictFrom
      : firstIndexAfter(this.#ids, options.after);
    for (; index < this.#ids.length; index++) {
      const order = this.#orders.get(this.#ids[index] as string);
      if (!order) continue;
      if (options.status !== undefined && order.status !== options.status) {
        continue;
      }
      if (orders.length === options.limit) {
        return Promise.resolve({ orders, hasMore: true });
      }
      orders.push(order);
    }
    return Promise.resolve({ orders, hasMore: false });
  }

  transition(id: string, change: Transition): Promise<Order> {
    const order = this.#orders.get(id);
    if (!order) return Promise.reject(new OrderNotFoundError(id));
    if (
      !change.from.includes(order.status) ||
      (change.cancelRequested !== undefined &&
        change.cancelRequested !== order.cancel_requested)
    ) {
      return Promise.reject(
        new InvalidTransitionError(id, order.status, change.action),
      );
    }
    const now = this.#now();
    const timeline = [...order.timeline];
    for (const entry of change.append ?? []) {
      timeline.push({ ...entry, at: now });
    }
    if (change.to !== undefined && change.to !== order.status) {
      timeline.push({ at: now, type: "status", status: change.to });
    }
    const updated: Order = {
      ...order,
      ...change.set,
      status: change.to ?? order.status,
      updated_at: now,
      timeline,
    };
    this.#orders.set(id, updated);
    return Promise.resolve(updated);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  /** Evicts the oldest finished order; `false` when none is finished. */
  #evictOne(): boolean {
    // Skip the tombstones at the front once, for good.
    while (
      this.#evictFrom < this.#ids.length &&
      !this.#orders.has(this.#ids[this.#evictFrom] as string)
    ) this.#evictFrom++;
    // Orders still active near the front are few (at most the queue plus the
    // workers), so this scan stays short.
    for (let index = this.#evictFrom; index < this.#ids.length; index++) {
      const id = this.#ids[index] as string;
      const order = this.#orders.get(id);
      if (!order || !isTerminal(order.status)) continue;
      this.#orders.delete(id);
      const key = this.#keyOf.get(id);
      if (key !== undefined) {
        this.#keyOf.delete(id);
        this.#byKey.delete(key);
      }
      this.#compactIfSparse();
      return true;
    }
    return false;
  }

  #compactIfSparse(): void {
    if (this.#ids.length < 1024 || this.#orders.size * 2 > this.#ids.length) {
      return;
    }
    this.#ids = this.#ids.filter((id) => this.#orders.has(id));
    this.#evictFrom = 0;
  }
}

/** Index of the first id sorting after `after` (ids are in sorted order). */
function firstIndexAfter(ids: readonly string[], after: string): number {
  let low = 0;
  let high = ids.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if ((ids[middle] as string) <= after) low = middle + 1;
    else high = middle;
  }
  return low;
}
