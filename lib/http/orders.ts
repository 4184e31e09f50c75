/**
 * The `/orders` resource.
 *
 * @module
 */

import { Hono } from "hono";
import { validator } from "hono/validator";
import { OrderNotFoundError } from "../orders/errors.ts";
import { toOrderJson } from "../orders/order.ts";
import type { OrderService } from "../orders/order_service.ts";
import type { OrderStore } from "../orders/order_store.ts";
import { type BodyLimits, fieldErrors, jsonBody } from "./json_body.ts";
import { HttpProblem, problemType } from "./problem.ts";
import {
  idempotencyKeySchema,
  listQuerySchema,
  newOrderSchema,
} from "./schemas.ts";

/** What the orders routes need. */
export interface OrdersRoutesOptions {
  store: OrderStore;
  service: OrderService;
  /** Limits on reading a request body (defaults: 64 KiB, 10 s). */
  bodyLimits?: Partial<BodyLimits> | undefined;
}

const ORDER_ID = /^ORD-[0-9A-HJKMNP-TV-Z]{26}$/;

/** Encodes a page cursor: opaque to clients, the last id seen to us. */
export function encodeCursor(lastId: string): string {
  return btoa(lastId).replaceAll("+", "-").replaceAll("/", "_").replace(
    /=+$/,
    "",
  );
}

/** Decodes a page cursor; `undefined` when it is not one of ours. */
export function decodeCursor(cursor: string): string | undefined {
  try {
    const id = atob(cursor.replaceAll("-", "+").replaceAll("_", "/"));
    return ORDER_ID.test(id) ? id : undefined;
  } catch {
    return undefined;
  }
}

function badQuery(detail: string, errors?: ReturnType<typeof fieldErrors>) {
  return new HttpProblem(400, "Bad Request", detail, {
    type: problemType("invalid-query"),
    ...(errors ? { errors } : {}),
  });
}

/** Creates the `/orders` sub-app. */
export function ordersRoutes(options: OrdersRoutesOptions) {
  const { store, service } = options;
  const bodyOptions = options.bodyLimits ?? {};

  return new Hono()
    .post("/", jsonBody(newOrderSchema, bodyOptions), async (c) => {
      const rawKey = c.req.header("idempotency-key");
      let key: string | undefined;
      if (rawKey !== undefined) {
        const parsed = idempotencyKeySchema.safeParse(rawKey);
        if (!parsed.success) {
          throw new HttpProblem(
            400,
            "Bad Request",
            parsed.error.issues[0]?.message ?? "Invalid Idempotency-Key",
            { type: problemType("invalid-idempotency-key") },
          );
        }
        key = parsed.data;
      }
      const { order, created } = await service.create(c.req.valid("json"), key);
      c.header("location", `/orders/${order.id}`);
      // A replay answers 200: nothing new was created by this request.
      if (!created) c.header("idempotent-replayed", "true");
      return c.json(toOrderJson(order), created ? 201 : 200);
    })
    .get(
      "/",
      validator("query", (value) => {
        const parsed = listQuerySchema.safeParse(value);
        if (!parsed.success) {
          throw badQuery(
            "Invalid query parameters",
            fieldErrors(parsed.error.issues),
          );
        }
        return parsed.data;
      }),
      async (c) => {
        const query = c.req.valid("query");
        let after: string | undefined;
        if (query.cursor !== undefined) {
          after = decodeCursor(query.cursor);
          if (after === undefined) throw badQuery("cursor is not valid");
        }
        const page = await store.list({
          limit: query.limit,
          after,
          status: query.status,
        });
        const last = page.orders.at(-1);
        if (page.hasMore && last) {
          const next = new URLSearchParams({ limit: String(query.limit) });
          if (query.status) next.set("status", query.status);
          next.set("cursor", encodeCursor(last.id));
          c.header("link", `</orders?${next}>; rel="next"`);
        }
        return c.json(page.orders.map(toOrderJson), 200);
      },
    )
    .get("/:id", async (c) => {
      const id = c.req.param("id");
      const order = await store.get(id);
      if (!order) throw new OrderNotFoundError(id);
      return c.json(toOrderJson(order), 200);
    })
    .post("/:id/cancel", async (c) => {
      const { order, immediate } = await service.cancel(c.req.param("id"));
      // 202: the cancel is accepted but happens at the next step boundary.
      return c.json({
        ...toOrderJson(order),
        cancellation: immediate ? "done" : "at_next_step_boundary",
      }, immediate ? 200 : 202);
    });
}
