/**
 * The storage contract every order backend implements. Every test in
 * `tests/store/contract.ts` runs against each implementation.
 *
 * @module
 */

import type {
  NewOrder,
  NewTimelineEntry,
  Order,
  OrderStatus,
} from "./order.ts";

/** What an instance tells the others with each heartbeat (the dashboard shows it). */
export interface InstanceStatus {
  queue_depth: number;
  queue_capacity: number;
  workers_busy: number;
  workers_total: number;
  accepting: boolean;
  /** Orders this instance finished since it started, by status. */
  finished?: { completed: number; failed: number; cancelled: number };
}

/** A live instance as the shared store knows it. */
export interface InstanceInfo {
  id: string;
  /** Epoch milliseconds. */
  started_at: number;
  /** Epoch milliseconds of its last heartbeat. */
  heartbeat_at: number;
  /** As of that heartbeat. */
  status: InstanceStatus | null;
}

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

// Defined beside TimelineEntry; named here too, where transitions use it.
export type { NewTimelineEntry } from "./order.ts";

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
  /**
   * Applies only while this instance still holds its claim on the order
   * (the fencing check). Every change a worker makes sets it: an instance
   * that was presumed dead and comes back cannot overwrite an order that
   * another instance rescued. A change that finishes the order ends the
   * claim.
   */
  claimed?: boolean;
  /**
   * The same for every try of one change. A store whose failed write may
   * still have committed (PostgreSQL: the connection lost before the
   * answer) applies a change with a token once, and answers a retry with
   * the order as that change left it instead of refusing it.
   */
  token?: string;
}

/** A change to one order as a store shared by several instances reports it. */
export interface StoredChange {
  /** The database's sequence number: the same on every instance. */
  id: number;
  /** `created`, or the type of the timeline entry the change added. */
  name: string;
  /** The order after the change. */
  order: Order;
  /** The instance that made the change. */
  instance: string;
}

/** Where a change feed starts: what is already counted when its first live change comes. */
export interface FeedStart {
  /** Orders by status, as of the same snapshot the live changes follow. */
  counts: Record<OrderStatus, number>;
  /**
   * Ids of changes still to be published live whose effect `counts`
   * already holds (committed before the snapshot, delivered after it):
   * a consumer that counts from changes skips these once.
   */
  counted: ReadonlySet<number>;
}

/**
 * Every instance's changes, in one order that every instance sees alike.
 * Only stores shared by several instances have one; for the others the
 * in-process wrapper (`store/observed.ts`) publishes each change.
 */
export interface ChangeFeed {
  /**
   * Calls `publish` for the last `history` changes already stored, then for
   * every change made from now on, by any instance, each exactly once and
   * in the feed's order. Stops when the store closes. Resolves with the
   * counts the live changes start from.
   */
  start(
    publish: (change: StoredChange) => void,
    history: number,
  ): Promise<FeedStart>;
  /**
   * The changes published after the one numbered `id`, in the feed's
   * order, from the store's own retention (for a `Last-Event-ID` older
   * than what the process keeps in memory); `undefined` when `id` is no
   * longer kept, or more than `limit` changes followed it.
   */
  replayAfter(id: number, limit: number): Promise<StoredChange[] | undefined>;
}

/**
 * Where orders live. Every method is atomic with respect to every other.
 * Orders returned are snapshots: later changes never alter them.
 *
 * **Claims.** An order that an instance holds in its queue or is processing
 * is claimed by it: `create` claims the new order for this instance,
 * `claimPending` claims unclaimed ones, `release` hands claims back, a
 * finishing transition ends one. `rescue` returns the claims of instances
 * that stopped. A single-process store (memory, SQLite) keeps its claims in
 * the process, so after a restart every unfinished order is unclaimed.
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
  /**
   * Claims up to `limit` unclaimed `pending` orders for this instance,
   * oldest first, and returns their ids.
   */
  claimPending(limit: number): Promise<string[]>;
  /**
   * Hands back this instance's claims on those of `ids` that are still
   * `pending` (queued, not started), so that another instance, or the next
   * start, takes them. Returns how many were handed back.
   */
  release(ids: readonly string[]): Promise<number>;
  /**
   * Tells the other instances that this one is alive. Resolves `false`
   * when they had presumed it dead and rescued its orders (its claims are
   * void; it has registered again).
   */
  heartbeat(status?: InstanceStatus): Promise<boolean>;
  /** The instances sharing the store (none for a single-process store). */
  instances(): Promise<InstanceInfo[]>;
  /**
   * How many orders have each status: read once at start (the dashboard
   * then counts from events), so it may scan.
   */
  countByStatus(): Promise<Record<OrderStatus, number>>;
  /**
   * Returns the orders claimed by instances that stopped (a previous
   * process, or an instance whose lease lapsed) to the unclaimed: a
   * `processing` one gets an `interrupted` entry and becomes `pending`
   * again (it resumes after its last finished step). Returns how many.
   */
  rescue(): Promise<number>;
  /**
   * Calls `wake` whenever unclaimed work may have appeared (a release or a
   * rescue, here or on another instance).
   */
  onUnclaimed(wake: () => void): void;
  /** Every instance's changes, when the store is shared by several. */
  readonly changeFeed?: ChangeFeed | undefined;
  /**
   * Releases resources. A shared store first hands back what this instance
   * still claims (an unfinished `processing` order is marked interrupted)
   * and deregisters it, so that nothing waits for its lease to lapse.
   */
  close(): Promise<void>;
}
