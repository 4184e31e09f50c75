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
    const last = failed.attempts;
    const reason = failed.failure_reason ?? "";
    // Race: another retry (here or on another instance) may win between
    // the read above and this change. The change is conditional on
    // `failed`, so the loser gets InvalidTransitionError (409), and the
    // entry it would have written, read before, is never written.
    const order = await this.#store.transition(id, {
      action: "retry",
      from: ["failed"],
      to: "pending",
      set: { attempts: 0, failure_reason: null },
      append: [{ type: "retried", attempt: last, reason }],
    });
    await this.#coordination?.offer([id]);
    return order;
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
