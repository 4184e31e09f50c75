/**
 * The zod schemas of what clients send: the single source of the request
 * types and their validation.
 *
 * @module
 */

import { z } from "zod";
import { ORDER_STATUSES, STEPS } from "../orders/order.ts";

/**
 * Refuses what a store could not keep exactly as sent: SQLite cuts a text
 * at NUL and replaces a lone surrogate with U+FFFD, so a client's retry of
 * the same body would no longer match its order. Control characters have
 * no place in an id or an item name either.
 */
const storable = (schema: z.ZodString, name: string) =>
  schema
    .refine(
      (value) => value.isWellFormed(),
      `${name} must be well-formed Unicode (no lone surrogates)`,
    )
    .refine(
      (value) => !CONTROL_CHARACTER.test(value),
      `${name} must not contain control characters (U+0000–U+001F, U+007F–U+009F)`,
    );

const CONTROL_CHARACTER = /\p{Cc}/u;

const identifier = (name: string) =>
  storable(
    z.string({ error: `${name} must be a string` })
      .max(64, `${name} must be at most 64 characters`)
      .regex(/\S/, `${name} must not be empty or blank`),
    name,
  );

/**
 * An RFC 3339 time with its offset (`2026-12-07T13:00:00Z`,
 * `2026-12-07T14:00:00.250+01:00`), as epoch milliseconds: the form the
 * orders' own `created_at` takes.
 */
/** An RFC 3339 time with an offset, named `name` in its errors, as epoch ms. */
export const timeFilter = (name: string) =>
  z.string()
    .regex(
      /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})$/i,
      `${name} must be an RFC 3339 time with an offset, such as 2026-12-07T13:00:00Z`,
    )
    .transform((value) => Date.parse(value))
    .pipe(
      z.number({ error: `${name} is not a real time` }).refine(
        (value) => Number.isFinite(value),
        `${name} is not a real time`,
      ),
    );

/**
 * The body of `POST /orders`. Strict: a client cannot set `id`, `status`,
 * timestamps or anything else the service owns.
 */
export const newOrderSchema = z.strictObject({
  customer_id: identifier("customer_id"),
  restaurant_id: identifier("restaurant_id"),
  items: z.array(
    storable(
      z.string({ error: "each item must be a string" })
        .min(1, "an item must not be empty")
        .max(200, "an item must be at most 200 characters"),
      "an item",
    ),
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
  customer_id: identifier("customer_id").optional(),
  restaurant_id: identifier("restaurant_id").optional(),
  created_after: timeFilter("created_after").optional(),
  created_before: timeFilter("created_before").optional(),
});

/**
 * The body of `POST /orders/retry`: which `failed` orders to put through
 * again. Every field narrows it; `{}` is every failed order.
 */
export const bulkRetrySchema = z.strictObject({
  customer_id: identifier("customer_id").optional(),
  restaurant_id: identifier("restaurant_id").optional(),
  failed_after: timeFilter("failed_after").optional(),
  failed_before: timeFilter("failed_before").optional(),
  reason: storable(
    z.string({ error: "reason must be a string" })
      .min(1, "reason must not be empty")
      .max(500, "reason must be at most 500 characters"),
    "reason",
  ).optional().describe("A prefix of the failure reason"),
});

/** What `POST /orders/retry` answers. */
export const bulkRetryResultSchema = z.object({
  retried: z.number().int().nonnegative().describe(
    "Failed orders put through again (by the first call, when replayed)",
  ),
});

/** The `Idempotency-Key` header: 1–255 visible ASCII characters. */
export const idempotencyKeySchema = z.string()
  .regex(
    /^[\x21-\x7e]{1,255}$/,
    "Idempotency-Key must be 1 to 255 visible ASCII characters",
  );

// Response schemas: the OpenAPI document is generated from these, and the
// tests parse real responses with them, so the document cannot drift from
// what the service sends.

const timestamp = z.iso.datetime().describe("RFC 3339 time, UTC");

/** One entry of an order's timeline. */
export const timelineEntrySchema = z.discriminatedUnion("type", [
  z.object({
    at: timestamp,
    type: z.literal("status"),
    status: z.enum(ORDER_STATUSES),
  }),
  z.object({
    at: timestamp,
    type: z.literal("step_finished"),
    step: z.enum(STEPS),
    attempt: z.number().int().nonnegative(),
  }),
  z.object({
    at: timestamp,
    type: z.literal("attempt_failed"),
    attempt: z.number().int().nonnegative(),
    reason: z.string(),
  }),
  z.object({ at: timestamp, type: z.literal("cancel_requested") }),
  z.object({
    at: timestamp,
    type: z.literal("interrupted"),
    attempt: z.number().int().nonnegative(),
  }),
  z.object({
    at: timestamp,
    type: z.literal("retried"),
    attempt: z.number().int().nonnegative(),
    reason: z.string(),
  }).describe(
    "An operator retried the failed order: the last attempt and reason of the failure it ended",
  ),
]);

/** An order as every endpoint returns it. */
export const orderSchema = z.strictObject({
  id: z.string().regex(/^ORD-[0-9A-HJKMNP-TV-Z]{26}$/).describe(
    "ORD- and a ULID: unique, sorts by creation time",
  ),
  customer_id: z.string(),
  restaurant_id: z.string(),
  items: z.array(z.string()),
  status: z.enum(ORDER_STATUSES),
  created_at: timestamp,
  updated_at: timestamp,
  attempts: z.number().int().nonnegative().describe(
    "Processing attempts started",
  ),
  failure_reason: z.string().nullable().describe(
    "Why the order failed; null unless failed",
  ),
  cancel_requested: z.boolean(),
  timeline: z.array(timelineEntrySchema),
});

/** The answer of `POST /orders/{id}/cancel`. */
export const cancelledOrderSchema = orderSchema.extend({
  cancellation: z.enum(["done", "at_next_step_boundary"]),
});

/** RFC 9457 problem details, as every error is answered. */
export const problemSchema = z.looseObject({
  type: z.string(),
  title: z.string(),
  status: z.number().int(),
  detail: z.string(),
  instance: z.string(),
  request_id: z.string().optional(),
  errors: z.array(
    z.object({ field: z.string(), pointer: z.string(), message: z.string() }),
  )
    .optional()
    .describe("Validation errors: each bad field and why"),
});

/** `GET /health`. */
export const healthSchema = z.object({
  status: z.literal("ok"),
  processing: z.enum(["running", "paused"]),
});

/** `GET /ready` while accepting orders. */
export const readySchema = z.object({
  status: z.literal("ready"),
  processing: z.enum(["running", "paused"]),
});

/** Whether processing is paused (`/processing`). */
export const processingSchema = z.object({
  paused: z.boolean(),
  since: z.iso.datetime().nullable().describe(
    "When it was last paused or resumed; null if never",
  ),
});
