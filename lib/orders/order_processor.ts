/**
 * Runs an order through its processing steps, with retries, cancellation
 * at step boundaries, and the state machine's transitions.
 *
 * @module
 */

import { doublingDelay } from "../async/backoff.ts";
import { delay } from "../async/delay.ts";
import type { Logger } from "@logtape/logtape";
import {
  ClaimLostError,
  InvalidTransitionError,
  StoreUnavailableError,
} from "./errors.ts";
import { finishedSteps, type Order, type OrderStatus, STEPS } from "./order.ts";
import type { OrderStats } from "./stats.ts";
import type { StepRunner } from "./steps.ts";
import type { OrderRepository } from "./order_store.ts";
import type { StoreHealth } from "./store_health.ts";

/** Options for {@linkcode OrderProcessor}. */
export interface OrderProcessorOptions {
  store: OrderRepository;
  runStep: StepRunner;
  stats: OrderStats;
  logger: Logger;
  /** Attempts in all before an order fails. */
  maxAttempts: number;
  /** The wait before retry number `attempt` (2, 3 …), in milliseconds. */
  backoffMs: (attempt: number) => number;
  /** Told of every refused and every committed write. */
  storeHealth?: StoreHealth | undefined;
  /**
   * The wait before trying a refused store write again, for the `attempt`th
   * time (default: 10 ms doubling to 1 s, with jitter).
   */
  storeRetryMs?: ((attempt: number) => number) | undefined;
}

// Refused store writes: 10 ms doubling to 1 s (jittered where used).
const STORE_RETRY = doublingDelay(10, 1000);

/** How processing one order ended. */
export type ProcessOutcome =
  | OrderStatus
  /** The order was not pending when a worker took it (cancelled while queued). */
  | "skipped"
  /** Shutdown aborted the work; the order was left unfinished. */
  | "abandoned"
  /**
   * This instance lost the order's claim (it was presumed dead and the
   * order rescued): the order was left to the instance that holds it now.
   */
  | "lost";

/**
 * Processes orders by id. All state changes go through the store's atomic
 * conditional transitions, so a cancel racing a worker has one winner.
 */
export class OrderProcessor {
  readonly #options: OrderProcessorOptions;
  // Controllers of the orders being processed, so that a cancel can abort
  // the running step.
  readonly #running = new Map<string, AbortController>();
  // Shutdown signals already watched. One listener per signal aborts every
  // running order; `AbortSignal.any()` per order did the same but cost ~8%
  // of POST /orders time under load (CPU profile, LATENCY_SCALE=0).
  readonly #watched = new WeakSet<AbortSignal>();
  // Write tokens: this processor's random prefix and a count. Unique
  // across instances and writes like a UUID per write, at the price of an
  // increment (crypto.randomUUID() four times per order was measurable).
  readonly #tokenPrefix = crypto.randomUUID();
  #tokens = 0;

  /** Creates a processor. */
  constructor(options: OrderProcessorOptions) {
    if (!Number.isInteger(options.maxAttempts) || options.maxAttempts < 1) {
      throw new RangeError(
        `Cannot create processor: maxAttempts must be a positive integer, received "${options.maxAttempts}"`,
      );
    }
    this.#options = options;
  }

  /** Aborts the running step of order `id`, if it is being processed here. */
  abortRunning(id: string): void {
    this.#running.get(id)?.abort(new Error("Order cancelled"));
  }

  /**
   * Processes order `id` to a terminal status. `shutdown` aborts when the
   * service gives up waiting; the order is then left as it is.
   */
  async process(id: string, shutdown: AbortSignal): Promise<ProcessOutcome> {
    const { store } = this.#options;
    let order: Order;
    try {
      order = await this.#untilStored(
        id,
        shutdown,
        (token) =>
          store.transition(id, {
            token,
            action: "start",
            from: ["pending"],
            to: "processing",
            incrementAttempts: true,
            claimed: true,
          }),
      );
    } catch (error) {
      // Cancelled (or evicted) while it waited in the queue.
      if (error instanceof InvalidTransitionError) return "skipped";
      if (error instanceof ClaimLostError) return this.#lost(id);
      if (shutdown.aborted) return "abandoned";
      throw error;
    }
    const controller = new AbortController();
    this.#running.set(id, controller);
    this.#watch(shutdown);
    if (shutdown.aborted) controller.abort(shutdown.reason);
    try {
      return await this.#attempts(order, controller.signal, shutdown);
    } catch (error) {
      if (error instanceof ClaimLostError) return this.#lost(id);
      if (error instanceof InvalidTransitionError) {
        // Only another instance moves an order this worker holds (on a
        // shared store: it was rescued away and finished there). The
        // fencing did its job; nothing here failed.
        this.#options.logger.warn(
          "Order {orderId} was changed elsewhere while this worker held it (now {status}); leaving it",
          { orderId: id, status: error.actual },
        );
        return "lost";
      }
      // Shutdown ended a wait for the store to take a write.
      if (shutdown.aborted) return "abandoned";
      throw error;
    } finally {
      this.#running.delete(id);
    }
  }

  /**
   * Runs a store call until the store takes it. A refused write
   * (`StoreUnavailableError`: a full disk, a lost database) changed nothing,
   * so trying it again is safe; giving up would strand an acknowledged
   * order `pending` or `processing` until a restart. Only shutdown ends the
   * waiting, by rejecting with its reason.
   */
  async #untilStored<T>(
    id: string,
    shutdown: AbortSignal,
    call: (token: string) => Promise<T>,
    options: { read?: boolean } = {},
  ): Promise<T> {
    const { storeHealth, logger } = this.#options;
    // One token for every try of this write: a store whose refused write
    // may still have committed (a connection lost before the answer)
    // applies it once and answers the retry with its result.
    const token = `${this.#tokenPrefix}:${++this.#tokens}`;
    for (let attempt = 1;; attempt++) {
      try {
        const result = await call(token);
        // A read that works says nothing of writes.
        if (!options.read) storeHealth?.recordWritten();
        if (attempt > 1) {
          logger.info("The store took order {orderId}'s write again", {
            orderId: id,
            tries: attempt,
          });
        }
        return result;
      } catch (error) {
        if (!(error instanceof StoreUnavailableError)) throw error;
        storeHealth?.recordRefused();
        if (attempt === 1) {
          logger.warn(
            "The store refused order {orderId}'s write; retrying until it takes it: {reason}",
            { orderId: id, reason: error.message },
          );
        }
        const waitMs = this.#options.storeRetryMs?.(attempt) ??
          STORE_RETRY(attempt) * (0.5 + Math.random());
        await delay(waitMs, { signal: shutdown });
      }
    }
  }

  #lost(id: string): "lost" {
    this.#options.logger.warn(
      "Order {orderId} was rescued by another instance while this one held it; leaving it to them",
      { orderId: id },
    );
    return "lost";
  }

  #watch(shutdown: AbortSignal): void {
    if (this.#watched.has(shutdown)) return;
    this.#watched.add(shutdown);
    shutdown.addEventListener("abort", () => {
      for (const controller of this.#running.values()) {
        controller.abort(shutdown.reason);
      }
    }, { once: true });
  }

  async #attempts(
    order: Order,
    signal: AbortSignal,
    shutdown: AbortSignal,
  ): Promise<ProcessOutcome> {
    const { store, runStep, maxAttempts, backoffMs, logger } = this.#options;
    while (true) {
      try {
        const finished = finishedSteps(order);
        for (const [index, step] of STEPS.entries()) {
          if (finished.has(step)) continue; // resumes after a failed attempt
          await runStep(step, order, signal);
          const last = index === STEPS.length - 1;
          // Conditional on no cancel request: a cancel that arrived while
          // the step ran wins, and the order goes to "cancelled" below.
          // The last step's record and the completion are one transition.
          const attempt = order.attempts;
          order = await this.#untilStored(
            order.id,
            shutdown,
            (token) =>
              store.transition(order.id, {
                token,
                action: last ? "complete" : "record a step of",
                from: ["processing"],
                cancelRequested: false,
                claimed: true,
                append: [{ type: "step_finished", step, attempt }],
                ...(last ? { to: "completed" as const } : {}),
              }),
          );
          if (last) {
            this.#options.stats.recordFinished("completed");
            return "completed";
          }
        }
        // Every step had finished before (a recovered order).
        return await this.#finish(order.id, "completed", null, shutdown);
      } catch (error) {
        if (error instanceof ClaimLostError) throw error;
        if (shutdown.aborted) return "abandoned";
        const current = await this.#untilStored(
          order.id,
          shutdown,
          () => store.get(order.id),
          { read: true },
        );
        if (!current || current.status !== "processing") {
          return current?.status ?? "skipped";
        }
        if (current.cancel_requested) {
          return await this.#finish(order.id, "cancelled", null, shutdown);
        }
        const reason = error instanceof Error ? error.message : String(error);
        logger.warn("Order {orderId} attempt {attempt} failed: {reason}", {
          orderId: order.id,
          attempt: current.attempts,
          reason,
        });
        if (current.attempts >= maxAttempts) {
          return await this.#finish(order.id, "failed", reason, shutdown);
        }
        try {
          await delay(backoffMs(current.attempts + 1), { signal });
        } catch {
          if (shutdown.aborted) return "abandoned";
          // Cancelled during the backoff: the next loop's first transition
          // fails on cancel_requested and lands in the branch above.
        }
        order = await this.#untilStored(
          order.id,
          shutdown,
          (token) =>
            store.transition(order.id, {
              token,
              action: "retry",
              from: ["processing"],
              claimed: true,
              set: { attempts: current.attempts + 1 },
              append: [{
                type: "attempt_failed",
                attempt: current.attempts,
                reason,
              }],
            }),
        );
      }
    }
  }

  async #finish(
    id: string,
    status: "completed" | "failed" | "cancelled",
    reason: string | null,
    shutdown: AbortSignal,
  ): Promise<ProcessOutcome> {
    try {
      await this.#untilStored(
        id,
        shutdown,
        (token) =>
          this.#options.store.transition(id, {
            token,
            action: status === "cancelled" ? "cancel" : `mark ${status}`,
            from: ["processing"],
            // Completing or failing requires that no cancel is pending: the
            // client who asked to cancel was told it would happen.
            ...(status === "cancelled" ? {} : { cancelRequested: false }),
            to: status,
            claimed: true,
            set: { failure_reason: reason },
          }),
      );
    } catch (error) {
      if (!(error instanceof InvalidTransitionError)) throw error;
      if (error.actual === "processing") {
        // A cancel request won the race with this transition.
        return await this.#finish(id, "cancelled", null, shutdown);
      }
      return error.actual;
    }
    this.#options.stats.recordFinished(status);
    return status;
  }
}
