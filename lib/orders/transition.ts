/**
 * The check every store makes before applying a conditional transition.
 *
 * @module
 */

import { InvalidTransitionError } from "./errors.ts";
import {
  canTransition,
  type Order,
  type OrderStatus,
  stampEntry,
} from "./order.ts";
import type { Transition } from "./order_store.ts";

/**
 * Why `change` may not be applied to an order in this state, or
 * `undefined` when it may: the status must be one of `change.from`, the
 * cancel flag must match when the change asks, and the state machine must
 * allow the new status.
 */
export function refuseTransition(
  id: string,
  current: { status: OrderStatus; cancelRequested: boolean },
  change: Transition,
): InvalidTransitionError | undefined {
  const matches = change.from.includes(current.status) &&
    (change.cancelRequested === undefined ||
      change.cancelRequested === current.cancelRequested) &&
    (change.to === undefined || change.to === current.status ||
      canTransition(current.status, change.to));
  return matches
    ? undefined
    : new InvalidTransitionError(id, current.status, change.action);
}

/**
 * The order after `change`, made at `nowMs` (never before the order's
 * creation), as a new object: the timeline gains the appended entries and
 * then the status entry; the fields in `change.set` are replaced. Call it
 * only after {@linkcode refuseTransition} said yes.
 */
export function applyTransition(
  current: Order,
  change: Transition,
  nowMs: number,
): Order {
  const now = Math.max(nowMs, current.created_at);
  const status = change.to ?? current.status;
  let timeline = current.timeline;
  if (change.append !== undefined || status !== current.status) {
    // One copy of the timeline with room for what is added (not a list of
    // additions and a concat), and entries stamped by `stampEntry` (not
    // `{ ...entry, at }`, a generic copy): applyTransition was the largest
    // self time of the workers' path under POST load (CPU profile).
    timeline = current.timeline.slice();
    for (const entry of change.append ?? []) {
      timeline.push(stampEntry(entry, now));
    }
    if (status !== current.status) {
      timeline.push({ at: now, type: "status", status });
    }
  }
  const set = change.set;
  return {
    id: current.id,
    customer_id: current.customer_id,
    restaurant_id: current.restaurant_id,
    items: current.items,
    status,
    created_at: current.created_at,
    updated_at: now,
    attempts: set?.attempts ??
      (change.incrementAttempts ? current.attempts + 1 : current.attempts),
    failure_reason: set?.failure_reason !== undefined
      ? set.failure_reason
      : current.failure_reason,
    cancel_requested: set?.cancel_requested ?? current.cancel_requested,
    timeline,
  };
}
