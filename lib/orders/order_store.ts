/**
 * The storage contract every order backend implements. Every test in
 * `tests/store/contract.ts` runs against each implementation.
 *
 * @module
 */

import type { NewOrder, Order, OrderStatus, TimelineEntry } from "./order.ts";

/** Options for {@linkcode OrderStore.create}. */
export interface CreateOptions {
  /** A client's `Idempotency-Key`; one key creates at most one order. */
  idempotencyKey?: string | undefined;
}

/** What {@linkcode OrderStore.create} returns. */
export interface CreateResult {
  /** The order created, or the one the idempotency key created earlier. */
  order: Order;
  /** `false` when the key had already created `order`. */
  created: boolean;
}

/** Options for {@linkcode OrderStore.list}. */
export interface ListOptions {
  /** At most this many orders. */
  limit: number;
  /** Only orders whose id sorts after this one (the cursor). */
  after?: string | undefined;
  /** Only orders with this status. */
  status?: OrderStatus | undefined;
}

/** One page of {@linkcode OrderStore.list}. */
export interface ListPage {
  /** Orders, oldest first. */
  orders: Order[];
  /** Whether more orders follow the last one on this page. */
  hasMore: boolean;
}

/** A timeline entry before the store stamps its time. */
export type NewTimelineEntry = TimelineEntry extends infer E
  ? E extends { at: number } ? Omit<E, "at"> : never
  : never;

/**
 * An atomic conditional update: it applies only if the order still matches
 * `expect` at the moment of writing. This is what lets a cancel and a worker
 * race on one order with exactly one winner.
 */
export interface Transition {
  /** Describes the change for error messages ("cancel", "complete" …). */
  action: string;
  /** The order must have one of these statuses. */
  from: readonly OrderStatus[];
  /** When given, `cancel_requested` must have this value. */
  cancelRequested?: boolean;
  /**
   * The new status; a status entry is added to the timeline. It must be a
   * transition the state machine allows (`canTransition`).
   */
  to?: OrderStatus;
  /** Adds one to `attempts` (a new processing attempt starts). */
  incrementAttempts?: boolean;
  /** Fields to set. */
  set?: {
    attempts?: number;
    failure_reason?: string | null;
    cancel_requested?: boolean;
  };
  /** Timeline entries to append (before the status entry, if any). */
  append?: NewTimelineEntry[];
}

/**
 * Where orders live. Every method is atomic with respect to every other.
 * Orders returned are snapshots: later changes never alter them.
 */
export interface OrderStore {
  /**
   * Creates a `pending` order, or returns the order an earlier call with
   * the same idempotency key created.
   *
   * @throws {IdempotencyConflictError} when the key created an order with another body.
   * @throws {StoreFullError} when the store is full and nothing can be evicted.
   */
  create(input: NewOrder, options?: CreateOptions): Promise<CreateResult>;
  /** The order with `id`, or `undefined`. */
  get(id: string): Promise<Order | undefined>;
  /** The order created with idempotency key `key`, or `undefined`. */
  getByIdempotencyKey(key: string): Promise<Order | undefined>;
  /** A page of orders, oldest first. */
  list(options: ListOptions): Promise<ListPage>;
  /**
   * Applies `change` if the order still matches its conditions.
   *
   * @throws {OrderNotFoundError} when no order has `id`.
   * @throws {InvalidTransitionError} when the order does not match.
   */
  transition(id: string, change: Transition): Promise<Order>;
  /** Releases resources. */
  close(): Promise<void>;
}
