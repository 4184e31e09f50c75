/**
 * The check every store makes before applying a conditional transition.
 *
 * @module
 */

import { InvalidTransitionError } from "./errors.ts";
import { canTransition, type OrderStatus } from "./order.ts";
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
