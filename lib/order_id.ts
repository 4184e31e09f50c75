/**
 * Order ids: `ORD-` followed by a ULID.
 *
 * @module
 */

import { monotonicFactory } from "ulid";

/**
 * Creates an id generator. Ids are unique and sort by creation time: within
 * one millisecond the monotonic factory increments the random part instead
 * of drawing a new one, so ids made in a burst still sort in creation order
 * (the reference service took ids from the clock and collided).
 *
 * @example
 * ```ts
 * import { createOrderIdFactory } from "./order_id.ts";
 * const newId = createOrderIdFactory();
 * newId(); // "ORD-01JD…"
 * ```
 */
export function createOrderIdFactory(): () => string {
  const next = monotonicFactory();
  return () => `ORD-${next()}`;
}
