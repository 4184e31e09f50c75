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
  #createRefusedAt: number | undefined;
  #leaseFailing = false;
  #claimsFailing = false;
  readonly #forgetAfterMs: number;
  readonly #now: () => number;

  /** Creates a tracker that believes the store writable. */
  constructor(
    options: { forgetAfterMs?: number; now?: () => number } = {},
  ) {
    this.#forgetAfterMs = options.forgetAfterMs ?? 5000;
    this.#now = options.now ?? Date.now;
  }

  /**
   * A write was refused by the store. `create`: a new order's, which a
   * store may refuse alone (SQLite on a full disk takes the accepted
   * orders' writes and refuses new orders).
   */
  recordRefused(options: { create?: boolean } = {}): void {
    this.#refusedAt = this.#now();
    if (options.create) this.#createRefusedAt = this.#refusedAt;
  }

  /**
   * A write was committed. Only a new order's clears a refusal of new
   * orders: the workers' writes going through says nothing of those.
   */
  recordWritten(options: { create?: boolean } = {}): void {
    this.#refusedAt = undefined;
    if (options.create) this.#createRefusedAt = undefined;
  }

  /** False while the store refuses writes, or new orders. */
  get writable(): boolean {
    return this.#recent(this.#refusedAt) === undefined &&
      this.#recent(this.#createRefusedAt) === undefined;
  }

  #recent(at: number | undefined): number | undefined {
    return at !== undefined && this.#now() - at <= this.#forgetAfterMs
      ? at
      : undefined;
  }

  /**
   * Whether this instance's last heartbeat was answered in time. A shared
   * store's other instances presume an instance dead when it fails for a
   * lease; one that cannot renew should not be sent orders meanwhile.
   */
  recordLease(renewed: boolean): void {
    this.#leaseFailing = !renewed;
  }

  /** Whether this instance's last look for unclaimed orders worked. */
  recordClaims(claimed: boolean): void {
    this.#claimsFailing = !claimed;
  }

  /** Why `/ready` should answer 503 for the store, or `undefined`. */
  get problem(): string | undefined {
    if (!this.writable) {
      return "The order store is refusing writes; accepted orders wait and are retried";
    }
    if (this.#leaseFailing) {
      return "This instance cannot renew its lease in the store; other instances may presume it dead and take over its orders";
    }
    if (this.#claimsFailing) {
      return "This instance cannot claim unclaimed orders from the store";
    }
    return undefined;
  }
}
