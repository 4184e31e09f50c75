/**
 * The default, in-memory order store.
 *
 * @module
 */

import {
  IdempotencyConflictError,
  OrderNotFoundError,
  StoreFullError,
} from "../orders/errors.ts";
import {
  isTerminal,
  type NewOrder,
  newPendingOrder,
  type Order,
  ORDER_STATUSES,
  type OrderStatus,
  sameNewOrder,
  STEPS,
  type TimelineEntry,
  zeroStatusCounts,
} from "../orders/order.ts";
import { createOrderIdFactory, idRangeOfCreation } from "../orders/order_id.ts";
import { matchesList } from "../orders/list_filter.ts";
import type {
  CreateOptions,
  CreateResult,
  ListOptions,
  ListPage,
  OrderStore,
  Transition,
} from "../orders/order_store.ts";
import { applyTransition, refuseTransition } from "../orders/transition.ts";
import { LocalCoordination } from "./local_coordination.ts";
import { MemoryControlRecords } from "./memory_control.ts";
import { MemoryWebhooks } from "./memory_webhooks.ts";

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
 * A finished order as this store keeps it, with its timeline packed into
 * one number per entry (see `encodeEntry`). Measured with
 * `deno task bench` (memory per finished order), this is what keeps the
 * store within its memory budget; plain timeline objects cost far more.
 * Orders still pending or processing (at most the queue and the workers)
 * are kept as plain `Order` objects instead: they change several times in
 * a few milliseconds, and decoding the packed form on every change was the
 * store's largest cost under load (a CPU profile).
 */
interface PackedOrder {
  id: string;
  customer_id: string;
  restaurant_id: string;
  items: string[];
  status: OrderStatus;
  created_at: number;
  /** Milliseconds from creation to the last change (a small integer). */
  updatedAfterMs: number;
  attempts: number;
  /** The timeline entries, each packed into one number (`encodeEntry`). */
  entries: number[];
  /** The rarely set fields; null for most orders, saving their slots. */
  extra: Extra | null;
}

interface Extra {
  failure_reason: string | null;
  cancel_requested: boolean;
  /** Reasons of the `attempt_failed` and `retried` entries, in order. */
  reasons: string[];
}

/** An order held by the store: live as an `Order`, finished as packed. */
type Held = Order | PackedOrder;

function isPacked(held: Held): held is PackedOrder {
  return "entries" in held;
}

/** The order as callers see it. A live order is shared: never changed, only replaced. */
function view(held: Held): Order {
  return isPacked(held) ? decode(held) : held;
}

/**
 * Orders in a `Map`, bounded by `maxOrders`.
 *
 * Atomicity: every method does its whole read-modify-write in one
 * synchronous turn of the event loop (there is no `await` between reading
 * an order and writing it), so no other task can interleave and the Map
 * needs no lock of its own. A change replaces an order, never mutates it,
 * so a snapshot handed to a reader never changes under it (callers must
 * treat orders as read-only: live ones are shared, not copied).
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
  #orders = new Map<string, Held>();
  #byKey = new Map<string, string>();
  #keyOf = new Map<string, string>();
  // Ids in creation order (which is also id order). Evicted ids stay here as
  // tombstones until they outnumber live ones, so eviction is O(1) amortised
  // and cursors can binary-search.
  #ids: string[] = [];
  #evictFrom = 0;
  // Starts empty, so nothing is left by an earlier process: no scan and
  // no rescue.
  readonly #claims = new LocalCoordination({
    isPending: (id) => {
      const held = this.#orders.get(id);
      return held !== undefined && !isPacked(held) && held.status === "pending";
    },
    list: (options) => this.list(options),
    transition: (id, change) => this.transition(id, change),
  });

  /** Claims held in this process. */
  get coordination(): LocalCoordination {
    return this.#claims;
  }

  /** Pause and bulk retry keys, held in the process like the orders. */
  readonly control: MemoryControlRecords = new MemoryControlRecords();

  /** Webhook endpoints and the outbox, held in the process like the orders. */
  readonly webhooks: MemoryWebhooks = new MemoryWebhooks();

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
        return Promise.resolve({ order: view(existing), created: false });
      }
    }
    if (this.#orders.size >= this.#maxOrders && !this.#evictOne()) {
      return Promise.reject(new StoreFullError(this.#maxOrders));
    }
    const now = this.#now();
    const order = newPendingOrder(this.#newId(), input, now);
    this.#orders.set(order.id, order);
    this.#ids.push(order.id);
    this.#claims.claim(order.id);
    if (key !== undefined) {
      this.#byKey.set(key, order.id);
      this.#keyOf.set(order.id, key);
    }
    this.webhooks.record(order, true, []);
    return Promise.resolve({ order, created: true });
  }

  get(id: string): Promise<Order | undefined> {
    const order = this.#orders.get(id);
    return Promise.resolve(order && view(order));
  }

  getByIdempotencyKey(key: string): Promise<Order | undefined> {
    const id = this.#byKey.get(key);
    const order = id === undefined ? undefined : this.#orders.get(id);
    return Promise.resolve(order && view(order));
  }

  list(options: ListOptions): Promise<ListPage> {
    const orders: Order[] = [];
    // A time filter bounds the ids to look at: start at the first that can
    // match, stop past the last.
    const { from, to } = idRangeOfCreation(
      options.createdAfter,
      options.createdBefore,
    );
    let index = Math.max(
      this.#evictFrom,
      options.after === undefined
        ? 0
        : firstIndexAfter(this.#ids, options.after),
      from === undefined ? 0 : firstIndexAfter(this.#ids, from, true),
    );
    for (; index < this.#ids.length; index++) {
      const id = this.#ids[index] as string;
      if (to !== undefined && id > to) break;
      const order = this.#orders.get(id);
      if (!order) continue;
      if (!matchesList(order, options)) continue;
      if (orders.length === options.limit) {
        return Promise.resolve({ orders, hasMore: true });
      }
      orders.push(view(order));
    }
    return Promise.resolve({ orders, hasMore: false });
  }

  transition(id: string, change: Transition): Promise<Order> {
    const held = this.#orders.get(id);
    if (!held) return Promise.reject(new OrderNotFoundError(id));
    const current = view(held);
    const refusal = refuseTransition(id, {
      status: current.status,
      cancelRequested: current.cancel_requested,
    }, change);
    if (refusal) return Promise.reject(refusal);
    const lost = this.#claims.refuse(id, change);
    if (lost) return Promise.reject(lost);
    const next = applyTransition(current, change, this.#now());
    // A finished order's timeline is final: pack it to save memory.
    this.#orders.set(id, isTerminal(next.status) ? pack(next) : next);
    this.#claims.settle(id, next.status);
    this.webhooks.record(
      next,
      false,
      next.timeline.slice(current.timeline.length),
    );
    return Promise.resolve(next);
  }

  countByStatus(): Promise<Record<OrderStatus, number>> {
    const counts = zeroStatusCounts();
    for (const held of this.#orders.values()) counts[held.status]++;
    return Promise.resolve(counts);
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

// A timeline entry packed into one number: the milliseconds since the
// order's creation times 8192, plus a 13-bit code — entry type (3 bits),
// status or step index (3 bits), attempt (7 bits; MAX_ATTEMPTS ≤ 100).
// Exact in a double for ~34 years of order age.
const TYPES = [
  "status",
  "step_finished",
  "attempt_failed",
  "cancel_requested",
  "interrupted",
  "retried",
] as const;

function encodeEntry(entry: TimelineEntry, createdAt: number): number {
  let index = 0;
  let attempt = 0;
  if (entry.type === "status") index = ORDER_STATUSES.indexOf(entry.status);
  else if (entry.type === "step_finished") {
    index = STEPS.indexOf(entry.step);
    attempt = entry.attempt;
  } else if (
    entry.type === "attempt_failed" || entry.type === "interrupted" ||
    entry.type === "retried"
  ) attempt = entry.attempt;
  const code = TYPES.indexOf(entry.type) | (index << 3) |
    (Math.min(attempt, 127) << 6);
  return (entry.at - createdAt) * 8192 + code;
}

/** Packs a finished order; arrays are exact-size (push leaves spare slots). */
function pack(order: Order): PackedOrder {
  const reasons: string[] = [];
  const { timeline } = order;
  const entries = new Array<number>(timeline.length);
  for (let index = 0; index < timeline.length; index++) {
    const entry = timeline[index]!;
    entries[index] = encodeEntry(entry, order.created_at);
    if (entry.type === "attempt_failed" || entry.type === "retried") {
      reasons.push(entry.reason);
    }
  }
  const needsExtra = order.failure_reason !== null || order.cancel_requested ||
    reasons.length > 0;
  return {
    id: order.id,
    customer_id: order.customer_id,
    restaurant_id: order.restaurant_id,
    items: order.items,
    status: order.status,
    created_at: order.created_at,
    updatedAfterMs: order.updated_at - order.created_at,
    attempts: order.attempts,
    entries,
    extra: needsExtra
      ? {
        failure_reason: order.failure_reason,
        cancel_requested: order.cancel_requested,
        reasons,
      }
      : null,
  };
}

function decode(order: PackedOrder): Order {
  let reasonIndex = 0;
  const timeline = order.entries.map((value): TimelineEntry => {
    const code = value % 8192;
    const at = order.created_at + (value - code) / 8192;
    const index = (code >> 3) & 7;
    const attempt = code >> 6;
    switch (TYPES[code & 7]) {
      case "status":
        return { at, type: "status", status: ORDER_STATUSES[index]! };
      case "step_finished":
        return { at, type: "step_finished", step: STEPS[index]!, attempt };
      case "attempt_failed":
      case "retried":
        return {
          at,
          type: TYPES[code & 7] as "attempt_failed" | "retried",
          attempt,
          reason: order.extra?.reasons[reasonIndex++] ?? "",
        };
      case "interrupted":
        return { at, type: "interrupted", attempt };
      default:
        return { at, type: "cancel_requested" };
    }
  });
  return {
    id: order.id,
    customer_id: order.customer_id,
    restaurant_id: order.restaurant_id,
    // Shared with the stored record: nothing ever changes an order's items.
    items: order.items,
    status: order.status,
    created_at: order.created_at,
    updated_at: order.created_at + order.updatedAfterMs,
    attempts: order.attempts,
    failure_reason: order.extra?.failure_reason ?? null,
    cancel_requested: order.extra?.cancel_requested ?? false,
    timeline,
  };
}

/** Index of the first id sorting after `after`, or at it when `orAt` (ids are in sorted order). */
function firstIndexAfter(
  ids: readonly string[],
  after: string,
  orAt = false,
): number {
  let low = 0;
  let high = ids.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    const id = ids[middle] as string;
    if (id < after || (!orAt && id === after)) low = middle + 1;
    else high = middle;
  }
  return low;
}
