/**
 * A gate that lets everyone waiting at it go on together, in a later turn
 * of the event loop.
 *
 * @module
 */

/**
 * Waiters pass the gate together: every {@linkcode TurnGate.wait} started
 * before the gate opens resolves in the same later turn of the event loop
 * (a timer phase), on one timer for all of them.
 *
 * Why: a worker woken by a new order otherwise runs it inside the turn of
 * the request that queued it, one order between every two requests. Woken
 * through a gate, the workers run the orders of a whole turn back to back,
 * after that turn's requests have been answered.
 *
 * @example
 * ```ts
 * import { TurnGate } from "./turn_gate.ts";
 * const gate = new TurnGate();
 * await Promise.all([gate.wait(), gate.wait()]); // one timer, one turn
 * ```
 */
export class TurnGate {
  #waiting: Array<() => void> = [];

  /** The number of waits the next opening will resolve. */
  get waiting(): number {
    return this.#waiting.length;
  }

  /** Resolves when the gate next opens, in a later turn of the event loop. */
  wait(): Promise<void> {
    const { promise, resolve } = Promise.withResolvers<void>();
    if (this.#waiting.push(resolve) === 1) setTimeout(this.#open, 0);
    return promise;
  }

  readonly #open = (): void => {
    const waiting = this.#waiting;
    // Waits started while these resolve belong to the next opening.
    this.#waiting = [];
    for (const resolve of waiting) resolve();
  };
}
