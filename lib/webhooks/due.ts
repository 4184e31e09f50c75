/**
 * Which of an endpoint's pending deliveries may go now, for a store that
 * picks them in code (memory, SQLite): due, not already held, and not
 * behind an earlier message of the same order that is held or not yet
 * tried.
 *
 * @module
 */

/** What the choice reads of a delivery. */
export interface PendingDelivery {
  id: string;
  order_id: string;
  attempts: number;
  next_attempt_at: number | null;
}

/**
 * Up to `limit` of `pending` (an endpoint's pending deliveries, oldest
 * first) that may be sent at `now`, given the ones `held` in flight.
 */
export function pickDue<T extends PendingDelivery>(
  pending: Iterable<T>,
  held: ReadonlySet<string>,
  now: number,
  limit: number,
): T[] {
  const picked: T[] = [];
  // Orders whose earlier message is in flight or not yet tried.
  const waiting = new Set<string>();
  for (const delivery of pending) {
    if (picked.length === limit) break;
    const blocked = waiting.has(delivery.order_id);
    const inFlight = held.has(delivery.id);
    if (inFlight || delivery.attempts === 0) waiting.add(delivery.order_id);
    if (blocked || inFlight) continue;
    if ((delivery.next_attempt_at ?? Infinity) > now) continue;
    picked.push(delivery);
  }
  return picked;
}
