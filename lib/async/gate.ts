/**
 * A gate that is open or shut: waiters at a shut gate go on when it opens.
 *
 * @module
 */

/**
 * Open by default. {@linkcode Gate.wait} resolves at once while the gate
 * is open, and otherwise when it next opens; it rejects when its signal
 * aborts, or when the gate is ended.
 *
 * @example
 * ```ts
 * import { Gate } from "./gate.ts";
 * const gate = new Gate();
 * gate.shut();
 * setTimeout(() => gate.open(), 10);
 * await gate.wait(); // resolves once opened
 * ```
 */
export class Gate {
  #open = true;
  #opened: PromiseWithResolvers<void> | undefined;
  #ended: unknown;
  #hasEnded = false;

  /** Whether waiters pass at once. */
  get isOpen(): boolean {
    return this.#open;
  }

  /** Lets every waiter go on, and later waits resolve at once. */
  open(): void {
    this.#open = true;
    this.#opened?.resolve();
    this.#opened = undefined;
  }

  /** Makes waits wait until {@linkcode Gate.open}. */
  shut(): void {
    if (this.#hasEnded) return;
    this.#open = false;
  }

  /**
   * Rejects every waiter, and every later wait at the shut gate, with
   * `reason`. An open gate stays open.
   */
  end(reason: unknown): void {
    this.#hasEnded = true;
    this.#ended = reason;
    this.#opened?.reject(reason);
    this.#opened = undefined;
  }

  /** Resolves when the gate is open. */
  wait(signal?: AbortSignal): Promise<void> {
    if (this.#open) return Promise.resolve();
    if (this.#hasEnded) return Promise.reject(this.#ended);
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.#opened === undefined) {
      this.#opened = Promise.withResolvers();
      // Nobody may be waiting when it is ended: not an unhandled rejection.
      this.#opened.promise.catch(() => {});
    }
    const opened = this.#opened.promise;
    if (signal === undefined) return opened;
    return new Promise((resolve, reject) => {
      const onAbort = () => reject(signal.reason);
      signal.addEventListener("abort", onAbort, { once: true });
      opened.then(resolve, reject).finally(() =>
        signal.removeEventListener("abort", onAbort)
      );
    });
  }
}
