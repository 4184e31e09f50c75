/**
 * Life-of-the-process order counters, reported in the shutdown summary.
 *
 * @module
 */

import type { OrderStatus } from "./order.ts";

/** The shutdown summary's numeric fields. */
export interface OrderSummary {
  accepted: number;
  completed: number;
  failed: number;
  cancelled: number;
  /**
   * Unclaimed orders this process took on: left unfinished by a previous
   * process, rescued from a stopped instance, handed back by another, or
   * failed and retried by an operator.
   */
  recovered: number;
  /** Queued orders handed back, unstarted, to other instances at shutdown. */
  handed_back: number;
  /** Orders another instance rescued while this one held them. */
  lost: number;
  /** Orders that finished while the service was draining. */
  drained: number;
  /**
   * Queued orders left `pending` in the store, unstarted, because the
   * service stopped while processing was paused (a store that keeps
   * orders: the next start, or another instance, takes them).
   */
  kept_paused: number;
  /** New orders refused with 503 because the queue was full. */
  refused: number;
  /** Orders accepted or recovered that this process neither finished nor handed on. */
  abandoned: number;
}

/**
 * Counts orders accepted and finished. Each order is counted once, by
 * whoever performed its winning transition.
 */
export class OrderStats {
  #accepted = 0;
  #completed = 0;
  #failed = 0;
  #cancelled = 0;
  #drained = 0;
  #recovered = 0;
  #handedBack = 0;
  #lost = 0;
  #keptPaused = 0;
  #refused = 0;
  #draining = false;

  /** Counts an order the service acknowledged with 201. */
  recordAccepted(): void {
    this.#accepted++;
  }

  /** Counts unclaimed orders claimed and queued. */
  recordRecovered(count = 1): void {
    this.#recovered += count;
  }

  /** Counts queued orders handed back at shutdown. */
  recordHandedBack(count: number): void {
    this.#handedBack += count;
  }

  /** Counts orders whose claim another instance took over. */
  recordLost(count = 1): void {
    this.#lost += count;
  }

  /** Queued orders left pending because the service stopped while paused. */
  recordKeptPaused(count = 1): void {
    this.#keptPaused += count;
  }

  /** A new order refused for a full queue. */
  recordRefused(): void {
    this.#refused++;
  }

  /** New orders refused for a full queue, since start. */
  get refused(): number {
    return this.#refused;
  }

  /** Counts an order that reached a terminal status. */
  recordFinished(status: OrderStatus): void {
    if (status === "completed") this.#completed++;
    else if (status === "failed") this.#failed++;
    else if (status === "cancelled") this.#cancelled++;
    else {throw new RangeError(
        `Cannot record "${status}": not a terminal status`,
      );}
    if (this.#draining) this.#drained++;
  }

  /** Marks the start of the drain, from which `drained` counts. */
  startDrain(): void {
    this.#draining = true;
  }

  /** The counters so far. */
  summary(): OrderSummary {
    const finished = this.#completed + this.#failed + this.#cancelled;
    return {
      accepted: this.#accepted,
      completed: this.#completed,
      failed: this.#failed,
      cancelled: this.#cancelled,
      recovered: this.#recovered,
      handed_back: this.#handedBack,
      lost: this.#lost,
      drained: this.#drained,
      kept_paused: this.#keptPaused,
      refused: this.#refused,
      abandoned: this.#accepted + this.#recovered - finished -
        this.#handedBack - this.#lost - this.#keptPaused,
    };
  }
}
