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
  /** Orders a previous process left unfinished that this one took on. */
  recovered: number;
  /** Orders that finished while the service was draining. */
  drained: number;
  /** Orders accepted or recovered that this process did not finish. */
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
  #draining = false;

  /** Counts an order the service acknowledged with 201. */
  recordAccepted(): void {
    this.#accepted++;
  }

  /** Counts an order recovered from a previous process and queued. */
  recordRecovered(): void {
    this.#recovered++;
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
      drained: this.#drained,
      abandoned: this.#accepted + this.#recovered - finished,
    };
  }
}
