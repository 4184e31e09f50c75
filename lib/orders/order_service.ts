/**
 * The application's use cases: accept an order (with backpressure and
 * idempotency), cancel one, retry a failed one, and stop accepting for
 * shutdown.
 *
 * @module
 */

import type { Channel } from "../async/channel.ts";
import {
  IdempotencyConflictError,
  InvalidTransitionError,
  OrderNotFoundError,
  QueueFullError,
  ServiceDrainingError,
  StoreUnavailableError,
} from "./errors.ts";
import { KeyedMutex } from "../async/mutex.ts";
import { type NewOrder, type Order, sameNewOrder } from "./order.ts";
import type { OrderProcessor } from "./order_processor.ts";
import type { OrderStats } from "./stats.ts";
import type {
  Coordination,
  CreateResult,
  OrderRepository,
} from "./order_store.ts";
import type { StoreHealth } from "./store_health.ts";

/** Options for {@linkcode OrderService}. */
export interface OrderServiceOptions {
  store: OrderRepository;
  /** The queue of order ids the workers consume. */
  queue: Channel<string>;
  stats: OrderStats;
  /** Aborts the running step of a cancelled order. */
  processor: Pick<OrderProcessor, "abortRunning">;
  /** The `Retry-After` hint when the queue is full, in seconds. */
  retryAfterSeconds?: number;
  /** Told when the store refuses or takes a new order. */
  storeHealth?: StoreHealth | undefined;
  /** Where a retried order goes: unclaimed work for a claimer to queue. */
  coordination?: Pick<Coordination, "offer"> | undefined;
}

/** Which `failed` orders a bulk retry puts through again; every field narrows it. */
export interface FailedFilter {
  customerId?: string | undefined;
  restaurantId?: string | undefined;
  /** Failed at or after this time (epoch ms). */
  failedAfter?: number | undefined;
  /** Failed before this time (epoch ms). */
  failedBefore?: number | undefined;
  /** The failure reason starts with this. */
  reason?: string | undefined;
}

// Failed orders read per page of a bulk retry.
const RETRY_PAGE = 200;

/**
 * Whether failed `order` passes the filters the list query cannot ask: a
 * failed order's last change is its failure, so `updated_at` is when it
 * failed.
 */
function matchesFailed(order: Order, filter: FailedFilter): boolean {
  return (filter.failedAfter === undefined ||
    order.updated_at >= filter.failedAfter) &&
    (filter.failedBefore === undefined ||
      order.updated_at < filter.failedBefore) &&
    (filter.reason === undefined ||
      (order.failure_reason ?? "").startsWith(filter.reason));
}

/** What {@linkcode OrderService.cancel} did. */
export interface CancelResult {
  order: Order;
  /** `true` when the order is already `cancelled`; `false` when a running order will stop at its next step boundary. */
  immediate: boolean;
}

/**
 * Accepts and cancels orders. The store keeps them; the queue carries their
 * ids to the workers.
 */
export class OrderService {
  readonly #store: OrderRepository;
  readonly #queue: Channel<string>;
  readonly #stats: OrderStats;
  readonly #processor: Pick<OrderProcessor, "abortRunning">;
  readonly #retryAfterSeconds: number;
  readonly #storeHealth: StoreHealth | undefined;
  readonly #coordination: Pick<Coordination, "offer"> | undefined;
  readonly #keyLocks = new KeyedMutex();
  #accepting = true;
  // Queue slots promised to requests whose order is being stored. Counting
  // them is what lets a request check for room *before* storing anything
  // and still be sure its send cannot fail afterwards.
  #reserved = 0;
  #inFlight = 0;
  #idle: PromiseWithResolvers<void> | undefined;

  /** Creates the service. */
  constructor(options: OrderServiceOptions) {
    if (options.queue.capacity < 1) {
      throw new RangeError(
        `Cannot create order service: queue capacity must be at least 1, received "${options.queue.capacity}"`,
      );
    }
    this.#store = options.store;
    this.#queue = options.queue;
    this.#stats = options.stats;
    this.#processor = options.processor;
    this.#retryAfterSeconds = options.retryAfterSeconds ?? 1;
    this.#storeHealth = options.storeHealth;
    this.#coordination = options.coordination;
  }

  /** Whether new orders are accepted (false once draining). */
  get accepting(): boolean {
    return this.#accepting;
  }

  /** The order ids waiting in the queue. */
  get queueDepth(): number {
    return this.#queue.size;
  }

  /**
   * Stores a new `pending` order and queues it, or, for a known idempotency
   * key with the same body, returns the order that key created.
   *
   * @throws {ServiceDrainingError} while shutting down.
   * @throws {QueueFullError} when the queue has no room; nothing is stored.
   * @throws {IdempotencyConflictError} when the key was used with another body.
   */
  async create(
    input: NewOrder,
    idempotencyKey?: string,
  ): Promise<CreateResult> {
    if (!this.#accepting) throw new ServiceDrainingError();
    this.#inFlight++;
    try {
      if (idempotencyKey === undefined) return await this.#admit(input);
      // Race: two requests with one key could both find no order and both
      // create one. Holding the key's lock across lookup → create makes the
      // second see the first's order.
      const release = await this.#keyLocks.acquire(idempotencyKey);
      try {
        const existing = await this.#store.getByIdempotencyKey(idempotencyKey);
        if (existing) {
          if (!sameNewOrder(existing, input)) {
            throw new IdempotencyConflictError(idempotencyKey, existing.id);
          }
          return { order: existing, created: false };
        }
        return await this.#admit(input, idempotencyKey);
      } finally {
        release();
      }
    } finally {
      if (--this.#inFlight === 0) this.#idle?.resolve();
    }
  }

  async #admit(
    input: NewOrder,
    idempotencyKey?: string,
  ): Promise<CreateResult> {
    // Re-checked here: an awaited lock may have outlasted the start of a drain.
    if (!this.#accepting) throw new ServiceDrainingError();
    // Never wait for room inside a request: refuse at once.
    if (this.#queue.size + this.#reserved >= this.#queue.capacity) {
      this.#stats.recordRefused();
      throw new QueueFullError(this.#retryAfterSeconds);
    }
    this.#reserved++;
    try {
      let result: CreateResult;
      try {
        result = await this.#store.create(input, { idempotencyKey });
      } catch (error) {
        if (error instanceof StoreUnavailableError) {
          this.#storeHealth?.recordRefused({ create: true });
        }
        throw error;
      }
      this.#storeHealth?.recordWritten({ create: true });
      if (result.created) {
        // Cannot fail: the slot was reserved and only workers have taken
        // from the queue since, and stopAccepting() waits for us to close it.
        if (!this.#queue.trySend(result.order.id)) {
          throw new Error(
            `Reserved queue slot was lost for "${result.order.id}"`,
          );
        }
        this.#stats.recordAccepted();
      }
      return result;
    } finally {
      this.#reserved--;
    }
  }

  /** Queue slots free for claimed work: none once draining. */
  get room(): number {
    if (!this.#accepting) return 0;
    return Math.max(
      0,
      this.#queue.capacity - this.#queue.size - this.#reserved,
    );
  }

  /**
   * Queues an order this instance has claimed (left by an earlier process,
   * rescued, or handed back by another instance), if there is room that no
   * request has reserved. Returns `false` without queuing otherwise; the
   * caller then hands its claim back.
   */
  enqueueClaimed(id: string): boolean {
    return this.room > 0 && this.#queue.trySend(id);
  }

  /**
   * Takes every order still queued after {@linkcode stopAccepting}: a
   * shared store hands them back to the other instances instead of
   * processing them here.
   */
  takeQueued(): string[] {
    const ids: string[] = [];
    while (true) {
      try {
        const next = this.#queue.tryReceive();
        if (!next.ok) return ids;
        ids.push(next.value);
      } catch {
        return ids; // closed and drained
      }
    }
  }

  /**
   * Puts a `failed` order through again: `pending`, with its attempts
   * starting from none and a `retried` entry that keeps the failure it
   * ends. It joins the queue as room allows, through a claimer, as
   * recovered work does; it is never dropped for a full queue.
   *
   * @throws {InvalidTransitionError} (409) when the order is not `failed`.
   * @throws {OrderNotFoundError} (404) when there is no such order.
   */
  async retry(id: string): Promise<Order> {
    const failed = await this.#store.get(id);
    if (!failed) throw new OrderNotFoundError(id);
    const order = await this.#retryFailed(failed);
    await this.#coordination?.offer([id]);
    return order;
  }

  /**
   * Puts every `failed` order that `filter` matches through again, as
   * {@linkcode retry} does one, and returns how many. Only the orders
   * `owns` accepts: under `PARALLEL` each isolate retries the ones it
   * works. An order that stops being `failed` meanwhile (another retry
   * won it) is left out of the count.
   */
  async retryFailed(
    filter: FailedFilter,
    owns: (id: string) => boolean = () => true,
  ): Promise<number> {
    let retried = 0;
    let after: string | undefined;
    while (true) {
      // Retried orders leave the `failed` status as the pages go by; the
      // cursor is the id, so none is skipped or seen twice.
      const page = await this.#store.list({
        status: "failed",
        customerId: filter.customerId,
        restaurantId: filter.restaurantId,
        after,
        limit: RETRY_PAGE,
      });
      const chosen = page.orders.filter((order) =>
        owns(order.id) && matchesFailed(order, filter)
      );
      // One page's changes go to the store together (PostgreSQL batches
      // them into one statement).
      const outcomes = await Promise.allSettled(
        chosen.map((order) => this.#retryFailed(order)),
      );
      const ids: string[] = [];
      let failure: unknown;
      outcomes.forEach((outcome, index) => {
        if (outcome.status === "fulfilled") ids.push(chosen[index]!.id);
        else if (!(outcome.reason instanceof InvalidTransitionError)) {
          failure ??= outcome.reason;
        }
      });
      // Offered even when another change of the page failed: a pending
      // order nobody was told of would wait for the next start.
      if (ids.length > 0) await this.#coordination?.offer(ids);
      if (failure !== undefined) throw failure;
      retried += ids.length;
      after = page.orders.at(-1)?.id;
      if (!page.hasMore || after === undefined) return retried;
    }
  }

  #retryFailed(failed: Order): Promise<Order> {
    // Race: another retry (here or on another instance) may win between
    // the caller's read and this change. The change is conditional on
    // `failed`, so the loser gets InvalidTransitionError (409), and the
    // entry it would have written, read before, is never written.
    return this.#store.transition(failed.id, {
      action: "retry",
      from: ["failed"],
      to: "pending",
      set: { attempts: 0, failure_reason: null },
      append: [{
        type: "retried",
        attempt: failed.attempts,
        reason: failed.failure_reason ?? "",
      }],
    });
  }

  /**
   * Cancels an order: a `pending` one at once; a `processing` one at its
   * next step boundary (its running step is aborted now).
   *
   * @throws {OrderNotFoundError} when there is no such order.
   * @throws {InvalidTransitionError} when the order has finished.
   */
  async cancel(id: string): Promise<CancelResult> {
    try {
      const order = await this.#store.transition(id, {
        action: "cancel",
        from: ["pending"],
        to: "cancelled",
      });
      this.#stats.recordFinished("cancelled");
      return { order, immediate: true };
    } catch (error) {
      if (
        !(error instanceof InvalidTransitionError) ||
        error.actual !== "processing"
      ) throw error;
    }
    let order: Order;
    try {
      order = await this.#store.transition(id, {
        action: "cancel",
        from: ["processing"],
        cancelRequested: false,
        set: { cancel_requested: true },
        append: [{ type: "cancel_requested" }],
      });
    } catch (error) {
      // Asked twice: the first request stands; answer as it was answered.
      if (
        error instanceof InvalidTransitionError &&
        error.actual === "processing"
      ) {
        const current = await this.#store.get(id);
        if (current?.status === "processing") {
          return { order: current, immediate: false };
        }
      }
      throw error;
    }
    this.#processor.abortRunning(id);
    return { order, immediate: false };
  }

  /**
   * Stops accepting orders, waits for requests already storing an order to
   * queue it, then closes the queue so the workers drain it and stop.
   * (The Go service this one replaces closed its channel under running handlers.)
   */
  async stopAccepting(): Promise<void> {
    this.#accepting = false;
    if (this.#inFlight > 0) {
      this.#idle = Promise.withResolvers();
      await this.#idle.promise;
    }
    this.#queue.close();
  }
}
