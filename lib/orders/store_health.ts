/**
 * Whether the store is accepting writes, as the last writes found it.
 *
 * @module
 */

/**
 * Tracks refused writes so that `/ready` can answer 503 while the store
 * refuses them (a full disk, a lost database). A refusal counts until a
 * write succeeds, or until `forgetAfterMs` pass without another refusal:
 * nobody may be writing, and a load balancer that stopped sending traffic
 * would otherwise never let a write prove the store well again.
 *
 * @example
 * ```ts
 * import { StoreHealth } from "./store_health.ts";
 * const health = new StoreHealth();
 * health.recordRefused();
 * health.writable; // false
 * health.recordWritten();
 * health.writable; // true
 * ```
 */
export class StoreHealth {
  #refusedAt: number | undefined;
  readonly #forgetAfterMs: number;
  readonly #now: () => number;

  /** Creates a tracker that believes the store writable. */
  constructor(
    options: { forgetAfterMs?: number; now?: () => number } = {},
  ) {
    this.#forgetAfterMs = options.forgetAfterMs ?? 5000;
    this.#now = options.now ?? Date.now;
  }

  /** A write was refused by the store. */
  recordRefused(): void {
    this.#refusedAt = this.#now();
  }

  /** A write was committed. */
  recordWritten(): void {
    this.#refusedAt = undefined;
  }

  /** False while the store refuses writes. */
  get writable(): boolean {
    return this.#refusedAt === undefined ||
      this.#now() - this.#refusedAt > this.#forgetAfterMs;
  }
}
