/**
 * The zod schemas of what clients send: the single source of the request
 * types and their validation.
 *
 * @module
 */

import { z } from "zod";
import { ORDER_STATUSES } from "../order.ts";

const identifier = (name: string) =>
  z.string({ error: `${name} must be a string` })
    .max(64, `${name} must be at most 64 characters`)
    .regex(/\S/, `${name} must not be empty or blank`);

/**
 * The body of `POST /orders`. Strict: a client cannot set `id`, `status`,
 * timestamps or anything else the service owns.
 */
export const newOrderSchema = z.strictObject({
  customer_id: identifier("customer_id"),
  restaurant_id: identifier("restaurant_id"),
  items: z.array(
    z.string({ error: "each item must be a string" })
      .min(1, "an item must not be empty")
      .max(200, "an item must be at most 200 characters"),
    { error: "items must be an array of strings" },
  )
    .min(1, "items must hold at least one item")
    .max(100, "items must hold at most 100 items"),
});

/** The largest page `GET /orders` returns. */
export const MAX_PAGE_SIZE = 1000;

/** The query of `GET /orders`. Unknown parameters are refused. */
export const listQuerySchema = z.strictObject({
  limit: z.string()
    .regex(
      /^[0-9]{1,4}$/,
      `limit must be a whole number from 1 to ${MAX_PAGE_SIZE}`,
    )
    .transform(Number)
    .pipe(
      z.number()
        .min(1, "limit must be at least 1")
        .max(MAX_PAGE_SIZE, `limit must be at most ${MAX_PAGE_SIZE}`),
    )
    .default(100),
  status: z.enum(ORDER_STATUSES, {
    error: `status must be one of ${ORDER_STATUSES.join(", ")}`,
  }).optional(),
  cursor: z.string().max(200, "cursor is not valid").optional(),
});

/** The `Idempotency-Key` header: 1–255 visible ASCII characters. */
export const idempotencyKeySchema = z.string()
  .regex(
    /^[\x21-\x7e]{1,255}$/,
    "Idempotency-Key must be 1 to 255 visible ASCII characters",
  );
