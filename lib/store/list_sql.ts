/**
 * The WHERE clause of a list, for the stores that answer it in SQL
 * (SQLite, PostgreSQL), so that both say the same.
 *
 * @module
 */

import { idRangeOfCreation } from "../orders/order_id.ts";
import type { ListOptions } from "../orders/order_store.ts";

/**
 * The conditions of a page of orders with the filters `options` gives,
 * each with one `?` for its value, and the values in order. Only the
 * filters given are there, so that the planner sees which index serves
 * the query: the status's, the customer's or the restaurant's (each ends
 * with the id), or the primary key. The cursor and a time filter bound
 * the id; `created_at` is then checked exactly.
 */
export function listConditions(
  options: ListOptions,
): { conditions: string[]; values: Array<string | number> } {
  const conditions: string[] = [];
  const values: Array<string | number> = [];
  const add = (condition: string, value: string | number | undefined) => {
    if (value === undefined) return;
    conditions.push(condition);
    values.push(value);
  };
  const { from, to } = idRangeOfCreation(
    options.createdAfter,
    options.createdBefore,
  );
  add("id > ?", options.after);
  add("status = ?", options.status);
  add("customer_id = ?", options.customerId);
  add("restaurant_id = ?", options.restaurantId);
  add("id >= ?", from);
  add("id <= ?", to);
  add("created_at >= ?", options.createdAfter);
  add("created_at < ?", options.createdBefore);
  return { conditions, values };
}
