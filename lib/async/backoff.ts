/**
 * Waits that double per attempt up to a ceiling, for retrying something
 * that is expected to come back (a store, a port, a database).
 *
 * @module
 */

/**
 * The wait before attempt `attempt` (1, 2 …) of a retry: `firstMs`, then
 * doubling, never more than `maxMs`.
 *
 * @example
 * ```ts
 * import { doublingDelay } from "./backoff.ts";
 * const wait = doublingDelay(100, 2000);
 * wait(1); // 100
 * wait(6); // 2000
 * ```
 */
export function doublingDelay(
  firstMs: number,
  maxMs: number,
): (attempt: number) => number {
  if (!(firstMs > 0) || !(maxMs >= firstMs)) {
    throw new RangeError(
      `Cannot back off: need 0 < firstMs ≤ maxMs, received "${firstMs}" and "${maxMs}"`,
    );
  }
  return (attempt) => Math.min(maxMs, firstMs * 2 ** Math.max(0, attempt - 1));
}

/**
 * Exponential backoff with jitter: `baseMs · 2^(attempt−2)`, scaled by a
 * random factor in [0.5, 1.5) so that things failing together do not retry
 * together.
 *
 * @example
 * ```ts
 * import { exponentialBackoff } from "./backoff.ts";
 * const wait = exponentialBackoff(1000);
 * wait(2); // between 500 and 1500
 * ```
 */
export function exponentialBackoff(
  baseMs: number,
  random: () => number = Math.random,
): (attempt: number) => number {
  return (attempt) => baseMs * 2 ** Math.max(0, attempt - 2) * (0.5 + random());
}
