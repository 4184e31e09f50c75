/**
 * Order ids: `ORD-` followed by a ULID.
 *
 * @module
 */

import { encodeTime, monotonicFactory } from "ulid";

/**
 * Creates an id generator. Ids are unique and sort by creation time: within
 * one millisecond the monotonic factory increments the random part instead
 * of drawing a new one, so ids made in a burst still sort in creation order
 * (the Go service this one replaces took ids from the clock, and they collided).
 *
 * @example
 * ```ts
 * import { createOrderIdFactory } from "./order_id.ts";
 * const newId = createOrderIdFactory();
 * newId(); // "ORD-01JD…"
 * ```
 */
export function createOrderIdFactory(): () => string {
  const next = monotonicFactory(pooledRandom());
  return () => `ORD-${next()}`;
}

/**
 * Cryptographic random fractions drawn from a 4 KiB pool, refilled in one
 * call. The library's default PRNG asks the OS for one byte per character
 * through a fresh one-byte buffer each time: 16 calls and 16 buffers per id.
 */
function pooledRandom(): () => number {
  const pool = new Uint8Array(4096);
  let next = pool.length;
  return () => {
    if (next === pool.length) {
      crypto.getRandomValues(pool);
      next = 0;
    }
    return pool[next++]! / 256;
  };
}

/**
 * The greatest id that can have been made before or at `epochMs`: every id
 * made later sorts after it. Recovery uses it to tell the orders a previous
 * process left from the ones this process is taking now.
 */
export function lastIdAt(epochMs: number): string {
  return `ORD-${encodeTime(epochMs, 10)}${"Z".repeat(16)}`;
}
