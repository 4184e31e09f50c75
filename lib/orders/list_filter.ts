/**
 * What a list's filters ask of an order, for a store that checks them in
 * code (memory; the SQL stores say the same in their WHERE clauses).
 *
 * @module
 */

import type { Order } from "./order.ts";
import type { ListOptions } from "./order_store.ts";

/** Whether `order` passes every filter of `options`. */
export function matchesList(
  order: Pick<Order, "status" | "customer_id" | "restaurant_id" | "created_at">,
  options: ListOptions,
): boolean {
  return (options.status === undefined || order.status === options.status) &&
    (options.customerId === undefined ||
      order.customer_id === options.customerId) &&
    (options.restaurantId === undefined ||
      order.restaurant_id === options.restaurantId) &&
    (options.createdAfter === undefined ||
      order.created_at >= options.createdAfter) &&
    (options.createdBefore === undefined ||
      order.created_at < options.createdBefore);
}
