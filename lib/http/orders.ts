/**
 * The `/orders` resource.
 *
 * @module
 */

import { Hono } from "hono";
import { validator } from "hono/validator";
import { OrderNotFoundError } from "../orders/errors.ts";
import { ORDER_STATUSES } from "../orders/order.ts";
import { type OrderJson, orderJsonText, toOrderJson } from "./order_json.ts";
import type { OrderService } from "../orders/order_service.ts";
import type { BulkRetry } from "../orders/bulk_retry.ts";
import type { OrderRepository } from "../orders/order_store.ts";
import {
  type BodyLimits,
  fieldError,
  fieldErrors,
  jsonBody,
} from "./json_body.ts";
import { HttpProblem, problemType } from "./problem.ts";
import { jsonResponse } from "./request_context.ts";
import {
  bulkRetrySchema,
  idempotencyKeySchema,
  listQuerySchema,
  MAX_PAGE_SIZE,
  newOrderSchema,
} from "./schemas.ts";
import {
  commonResponses,
  type DocContext,
  json,
  locationHeader,
  orderIdParameter,
  type PathItems,
  problemResponse,
  ref,
  retryAfter,
} from "./openapi_parts.ts";

/** What the orders routes need. */
export interface OrdersRoutesOptions {
  store: OrderRepository;
  service: OrderService;
  /** An operator's retry of failed orders in bulk. */
  bulkRetry: BulkRetry;
  /** Limits on reading a request body (defaults: 64 KiB, 10 s). */
  bodyLimits?: Partial<BodyLimits> | undefined;
}

const ORDER_ID = /^ORD-[0-9A-HJKMNP-TV-Z]{26}$/;

/** The filters of `GET /orders`, which its next page's link repeats. */
const FILTERS = [
  "status",
  "customer_id",
  "restaurant_id",
  "created_after",
  "created_before",
] as const;

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

/**
 * Whether a `Prefer` header (RFC 7240) asks for `return=minimal`. Tokens
 * are case-insensitive; other preferences and parameters are ignored.
 */
export function prefersMinimal(header: string | undefined): boolean {
  if (header === undefined) return false;
  return header.split(",").some((preference) =>
    preference.split(";")[0]!.trim().toLowerCase().replace(/\s*=\s*/, "=") ===
      "return=minimal"
  );
}

/** The relation type of an order's cancel action (an extension relation is a URI). */
export const CANCEL_RELATION = "urn:order-service:rel:cancel";

/**
 * The `Link` header (RFC 8288) of a created order: where to follow it
 * (`monitor`, RFC 5989: its event stream), how to cancel it, and the API's
 * description (RFC 8631), so a client needs no URL templates of its own.
 *
 * It also puts the 201 in one TCP send. Deno 2.9.6 copies a response's
 * body into the buffer that holds its head only when both fit that
 * buffer, which starts at 512 bytes and doubles when the head alone is
 * larger: our 201 without this header is a 249-byte head and a 362-byte
 * body, two sends; with it, a 574-byte head, and head and body go in one
 * (strace -c; see the README's Performance section for what it measured).
 */
export function orderLinks(location: string): string {
  return `<${location}/events>; rel="monitor"; type="text/event-stream", ` +
    `<${location}/cancel>; rel="${CANCEL_RELATION}", ` +
    `</openapi.json>; rel="service-desc"; type="application/openapi+json", ` +
    `</docs>; rel="service-doc"; type="text/html"`;
}

const orderLinksHeader = {
  Link: {
    required: true,
    schema: { type: "string" },
    description:
      `RFC 8288: \`</orders/{id}/events>; rel="monitor"\` (its event stream), \`</orders/{id}/cancel>; rel="${CANCEL_RELATION}"\` (POST to cancel it), \`</openapi.json>; rel="service-desc"\` and \`</docs>; rel="service-doc"\``,
  },
};

/** The `Idempotency-Key` header's value, checked; 400 when malformed. */
function idempotencyKeyOf(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const parsed = idempotencyKeySchema.safeParse(header);
  if (parsed.success) return parsed.data;
  throw new HttpProblem(
    400,
    "Bad Request",
    parsed.error.issues[0]?.message ?? "Invalid Idempotency-Key",
    { type: problemType("invalid-idempotency-key") },
  );
}

/** The `Idempotency-Key` header, as the API description states it. */
const idempotencyKeyParameter = {
  name: "Idempotency-Key",
  in: "header",
  required: false,
  schema: {
    type: "string",
    minLength: 1,
    maxLength: 255,
    pattern: "^[\\x21-\\x7e]+$",
  },
};

/** Creates the `/orders` sub-app. */
export function ordersRoutes(options: OrdersRoutesOptions) {
  const { store, service } = options;
  const bodyOptions = options.bodyLimits ?? {};

  return new Hono()
    .post("/", jsonBody(newOrderSchema, bodyOptions), async (c) => {
      const key = idempotencyKeyOf(c.req.header("idempotency-key"));
      const { order, created } = await service.create(c.req.valid("json"), key);
      const location = `/orders/${order.id}`;
      const link = orderLinks(location);
      if (prefersMinimal(c.req.header("prefer"))) {
        // RFC 7240: the client asked for no body; Location names the order
        // (and Link what to do with it, as on the full answer).
        const minimal = c.body(null, created ? 201 : 200, {
          location,
          link,
          "preference-applied": "return=minimal",
          ...(created ? {} : { "idempotent-replayed": "true" }),
        });
        // Typed away: the typed client (hc<AppType>) never sends Prefer, so
        // its answers are the JSON ones below; a bodiless member in the
        // union would make every 201 body `unknown` to it.
        return minimal as never;
      }
      // A replay answers 200: nothing new was created by this request.
      return created
        ? jsonResponse<OrderJson, 201>(c, orderJsonText(order), 201, {
          location,
          link,
        })
        : jsonResponse<OrderJson, 200>(c, orderJsonText(order), 200, {
          location,
          link,
          "idempotent-replayed": "true",
        });
    })
    .get(
      "/",
      validator("query", (value) => {
        // A parameter given twice (?limit=1&limit=2) arrives as an array;
        // say so in words rather than as a type mismatch.
        const repeated = Object.entries(value)
          .filter(([, given]) => Array.isArray(given))
          .map(([name]) =>
            fieldError([name], `${name} may be given only once`)
          );
        if (repeated.length > 0) {
          throw badQuery("Invalid query parameters", repeated);
        }
        const parsed = listQuerySchema.safeParse(value);
        if (!parsed.success) {
          throw badQuery(
            "Invalid query parameters",
            fieldErrors(
              parsed.error.issues,
              (name) =>
                `${name} is not a query parameter of GET /orders, which takes limit, status, customer_id, restaurant_id, created_after, created_before and cursor`,
            ),
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
          customerId: query.customer_id,
          restaurantId: query.restaurant_id,
          createdAfter: query.created_after,
          createdBefore: query.created_before,
        });
        const last = page.orders.at(-1);
        if (page.hasMore && last) {
          // The next page keeps every filter, as the client sent it.
          const next = new URLSearchParams({ limit: String(query.limit) });
          for (const name of FILTERS) {
            const given = c.req.query(name);
            if (given !== undefined) next.set(name, given);
          }
          next.set("cursor", encodeCursor(last.id));
          c.header("link", `</orders?${next}>; rel="next"`);
        }
        return c.json(page.orders.map(toOrderJson), 200);
      },
    )
    .post(
      "/retry",
      jsonBody(bulkRetrySchema, bodyOptions, {
        noun: "a bulk retry's filter",
        fields:
          "customer_id, restaurant_id, failed_after, failed_before and reason",
      }),
      async (c) => {
        const key = idempotencyKeyOf(c.req.header("idempotency-key"));
        const filter = c.req.valid("json");
        const { retried, replayed } = await options.bulkRetry.run({
          customerId: filter.customer_id,
          restaurantId: filter.restaurant_id,
          failedAfter: filter.failed_after,
          failedBefore: filter.failed_before,
          reason: filter.reason,
        }, key);
        return c.json(
          { retried },
          200,
          replayed ? { "idempotent-replayed": "true" } : {},
        );
      },
    )
    .get("/:id", async (c) => {
      const id = c.req.param("id");
      const order = await store.get(id);
      if (!order) throw new OrderNotFoundError(id);
      return jsonResponse<OrderJson, 200>(c, orderJsonText(order), 200);
    })
    .post("/:id/cancel", async (c) => {
      const { order, immediate } = await service.cancel(c.req.param("id"));
      // 202: the cancel is accepted but happens at the next step boundary.
      return c.json({
        ...toOrderJson(order),
        cancellation: immediate ? "done" : "at_next_step_boundary",
      }, immediate ? 200 : 202);
    })
    .post("/:id/retry", async (c) => {
      const order = await service.retry(c.req.param("id"));
      return c.json(toOrderJson(order), 200);
    });
}

/**
 * The OpenAPI operations of the `/orders` routes above.
 */
export function ordersDocs(ctx: DocContext): PathItems {
  return {
    "/orders": {
      post: {
        operationId: "createOrder",
        tags: ["orders"],
        summary: "Create an order",
        description:
          "Stores the order as `pending` and queues it. With an `Idempotency-Key`, a repeat with the same body answers 200 with the order that key created, as it is now; with another body, 422.",
        ...ctx.secured,
        parameters: [{
          name: "Prefer",
          in: "header",
          required: false,
          schema: { type: "string", example: "return=minimal" },
          description:
            "RFC 7240. `return=minimal`: answer 201 (or 200) with Location and no body.",
        }, idempotencyKeyParameter],
        requestBody: {
          required: true,
          content: {
            "application/json": {
              schema: ref("NewOrder"),
              example: {
                customer_id: "c_12345",
                restaurant_id: "r_456",
                items: ["veggie_burger", "fries"],
              },
            },
          },
        },
        responses: {
          "201": {
            description:
              "Created: the order; with `Prefer: return=minimal`, no body and `Preference-Applied: return=minimal`",
            headers: {
              ...locationHeader,
              ...orderLinksHeader,
              "Preference-Applied": {
                schema: { type: "string", enum: ["return=minimal"] },
                description: "Sent when `Prefer: return=minimal` was honoured",
              },
            },
            content: json(ref("Order")),
          },
          "200": {
            description:
              "An Idempotency-Key replay: the order that key created, in its current state",
            headers: {
              ...locationHeader,
              ...orderLinksHeader,
              "Idempotent-Replayed": {
                required: true,
                schema: { type: "string", enum: ["true"] },
              },
            },
            content: json(ref("Order")),
          },
          "400": problemResponse(
            "Malformed JSON, invalid UTF-8, a duplicate member name, a body cut short, or a bad Idempotency-Key",
          ),
          "408": problemResponse("The body did not arrive in time"),
          "413": problemResponse("The body exceeds 64 KiB"),
          "415": problemResponse("The body is not declared application/json"),
          "422": problemResponse(
            "The body breaks a rule (see `errors`), or the Idempotency-Key was used with another body",
          ),
          ...commonResponses(ctx),
        },
      },
      get: {
        operationId: "listOrders",
        tags: ["orders"],
        summary: "List orders, oldest first",
        ...ctx.secured,
        parameters: [
          {
            name: "limit",
            in: "query",
            schema: {
              type: "integer",
              minimum: 1,
              maximum: MAX_PAGE_SIZE,
              default: 100,
            },
          },
          {
            name: "status",
            in: "query",
            schema: { type: "string", enum: [...ORDER_STATUSES] },
          },
          {
            name: "customer_id",
            in: "query",
            schema: { type: "string", maxLength: 64 },
            description: "Only this customer's orders",
          },
          {
            name: "restaurant_id",
            in: "query",
            schema: { type: "string", maxLength: 64 },
            description: "Only this restaurant's orders",
          },
          {
            name: "created_after",
            in: "query",
            schema: { type: "string", format: "date-time" },
            description:
              "Only orders created at or after this time (RFC 3339, with an offset)",
          },
          {
            name: "created_before",
            in: "query",
            schema: { type: "string", format: "date-time" },
            description:
              "Only orders created before this time (RFC 3339, with an offset)",
          },
          {
            name: "cursor",
            in: "query",
            schema: { type: "string" },
            description:
              "Opaque; from the previous page's Link header, which keeps the filters",
          },
        ],
        responses: {
          "200": {
            description: "A page of orders",
            headers: {
              Link: {
                schema: { type: "string" },
                description:
                  'RFC 8288 `<…>; rel="next"` when more orders follow',
              },
            },
            content: json({ type: "array", items: ref("Order") }),
          },
          "400": problemResponse("A bad, repeated or unknown query parameter"),
          ...commonResponses(ctx),
        },
      },
    },
    "/orders/{id}": {
      get: {
        operationId: "getOrder",
        tags: ["orders"],
        summary: "Read one order",
        ...ctx.secured,
        parameters: [orderIdParameter],
        responses: {
          "200": { description: "The order", content: json(ref("Order")) },
          "404": problemResponse("No such order"),
          ...commonResponses(ctx),
        },
      },
    },
    "/orders/{id}/cancel": {
      post: {
        operationId: "cancelOrder",
        tags: ["orders"],
        summary: "Cancel an order",
        description:
          "A pending order is cancelled at once (200); a processing one at its next step boundary (202).",
        ...ctx.secured,
        parameters: [orderIdParameter],
        responses: {
          "200": {
            description: "Cancelled",
            content: json(ref("CancelledOrder")),
          },
          "202": {
            description: "Will be cancelled at the next step boundary",
            content: json(ref("CancelledOrder")),
          },
          "404": problemResponse("No such order"),
          "409": problemResponse("The order has already finished"),
          ...commonResponses(ctx),
        },
      },
    },
    "/orders/retry": {
      post: {
        operationId: "retryFailedOrders",
        tags: ["orders"],
        summary: "Put failed orders through again, in bulk",
        description:
          "Every `failed` order the body's filters match becomes `pending` with its attempts starting again, as `POST /orders/{id}/retry` does one (`failed_after` and `failed_before` are on when the order failed; `reason` is a prefix of its failure reason; `{}` is every failed order). They are queued as room allows, never dropped. With an `Idempotency-Key`, a repeat with the same body answers as the first call did (`Idempotent-Replayed: true`) and retries nothing more, through any instance.",
        ...ctx.secured,
        parameters: [idempotencyKeyParameter],
        requestBody: {
          required: true,
          content: json(ref("BulkRetry")),
        },
        responses: {
          "200": {
            description: "How many orders were put through again",
            content: json(ref("BulkRetryResult")),
          },
          "409": problemResponse(
            "A bulk retry with this key is still running",
            retryAfter,
          ),
          "422": problemResponse(
            "The key was used with another filter",
          ),
          ...commonResponses(ctx),
        },
      },
    },
    "/orders/{id}/retry": {
      post: {
        operationId: "retryOrder",
        tags: ["orders"],
        summary: "Put a failed order through again",
        description:
          "A `failed` order becomes `pending` with its attempts starting again; its timeline gains a `retried` entry keeping the failure it ends. It is queued as room allows, never dropped.",
        ...ctx.secured,
        parameters: [orderIdParameter],
        responses: {
          "200": {
            description: "Pending again",
            content: json(ref("Order")),
          },
          "404": problemResponse("No such order"),
          "409": problemResponse("The order is not failed"),
          ...commonResponses(ctx),
        },
      },
    },
  };
}
