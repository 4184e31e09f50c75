/**
 * Rows of the PostgreSQL store's tables as node-postgres returns them, and
 * their conversion to the domain's values.
 *
 * @module
 */

import type { Order } from "../orders/order.ts";

/** An orders row: the order's fields, with bigint times as pg returns them. */
export type OrderRow = Omit<Order, "created_at" | "updated_at"> & {
  created_at: string;
  updated_at: string;
  claimed_by: string | null;
  claim_epoch: string;
};

/** The order an orders row holds. */
export function toOrder(row: OrderRow): Order {
  return {
    id: row.id,
    customer_id: row.customer_id,
    restaurant_id: row.restaurant_id,
    items: row.items,
    status: row.status,
    // bigint columns come back as strings; epoch milliseconds fit a double.
    created_at: Number(row.created_at),
    updated_at: Number(row.updated_at),
    attempts: row.attempts,
    failure_reason: row.failure_reason,
    cancel_requested: row.cancel_requested,
    timeline: row.timeline,
  };
}
