/**
 * The storage contract every order backend implements. Every test in
 * `tests/store/contract.ts` runs against each implementation.
 *
 * @module
 */

import type { Coordination } from "./coordination.ts";
import type { ControlRecords } from "./control_records.ts";
import type {
  NewOrder,
  NewTimelineEntry,
  Order,
  OrderStatus,
} from "./order.ts";

/** Options for {@linkcode OrderRepository.create}. */
export interface CreateOptions {
  /** A client's `Idempotency-Key`; one key creates at most one order. */
  idempotencyKey?: string | undefined;
}

/** What {@linkcode OrderRepository.create} returns. */
export interface CreateResult {
  /** The order created, or the one the idempotency key created earlier. */
  order: Order;
  /** `false` when the key had already created `order`. */
  created: boolean;
}

/** Options for {@linkcode OrderRepository.list}. */
export interface ListOptions {
  /** At most this many orders. */
  limit: number;
  /** Only orders whose id sorts after this one (the cursor). */
  after?: string | undefined;
  /** Only orders with this status. */
  status?: OrderStatus | undefined;
  /** Only this customer's orders. */
  customerId?: string | undefined;
  /** Only this restaurant's orders. */
  restaurantId?: string | undefined;
  /** Only orders created at or after this time (epoch ms). */
  createdAfter?: number | undefined;
  /** Only orders created before this time (epoch ms). */
  createdBefore?: number | undefined;
}

/** One page of {@linkcode OrderRepository.list}. */
export interface ListPage {
  /** Orders, oldest first. */
  orders: Order[];
  /** Whether more orders follow the last one on this page. */
  hasMore: boolean;
}

export type { ControlRecords } from "./control_records.ts";
export type {
  ChangeFeed,
  Coordination,
  FeedStart,
  InstanceInfo,
  InstanceStatus,
  StoredChange,
} from "./coordination.ts";

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

/**
 * The order repository: where orders live, what every backend must do.
 * Every method is atomic with respect to every other. Orders returned are
 * snapshots: later changes never alter them. A change marked `claimed` is
 * fenced by this instance's claim (see `coordination.ts`).
 */
export interface OrderRepository {
  /**
   * Creates a `pending` order, claimed by this instance, or returns the
   * order an earlier call with the same idempotency key created.
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
   * @throws {ClaimLostError} when a `claimed` change finds the claim gone.
   */
  transition(id: string, change: Transition): Promise<Order>;
  /**
   * How many orders have each status: read once at start (the dashboard
   * then counts from events), so it may scan.
   */
  countByStatus(): Promise<Record<OrderStatus, number>>;
  /**
   * Releases resources. A shared store first hands back what this instance
   * still claims (an unfinished `processing` order is marked interrupted)
   * and deregisters it, so that nothing waits for its lease to lapse.
   */
  close(): Promise<void>;
}

/**
 * A backend as its class is built: the order repository, handing out the
 * coordination and the control records that serve it as separate objects. A store that one
 * process opens alone gets the single-process coordination
 * (`store/local_coordination.ts`); a shared one brings its own.
 */
export interface OrderStore extends OrderRepository {
  /** How the instances sharing this store divide its orders. */
  readonly coordination: Coordination;
  /** What operators set that outlives a request. */
  readonly control: ControlRecords;
}
