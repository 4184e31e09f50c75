/**
 * The OpenAPI 3.1 document, generated from the zod schemas that validate
 * requests and describe responses (zod's own JSON Schema output: OpenAPI
 * 3.1 schemas are JSON Schema 2020-12). A test compares its paths with the
 * app's routes, so neither can gain an entry the other lacks.
 *
 * @module
 */

import { z } from "zod";
import { ORDER_STATUSES } from "../orders/order.ts";
import {
  cancelledOrderSchema,
  healthSchema,
  MAX_PAGE_SIZE,
  newOrderSchema,
  orderSchema,
  problemSchema,
  readySchema,
} from "./schemas.ts";

type JsonObject = Record<string, unknown>;

function schemaOf(schema: z.ZodType, io: "input" | "output"): JsonObject {
  const { $schema: _, ...json } = z.toJSONSchema(schema, {
    target: "draft-2020-12",
    io,
    unrepresentable: "any",
  }) as JsonObject;
  return json;
}

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const json = (schema: JsonObject) => ({ "application/json": { schema } });
const problem = (description: string, headers?: JsonObject) => ({
  description,
  content: { "application/problem+json": { schema: ref("Problem") } },
  ...(headers ? { headers } : {}),
});
const retryAfter = {
  "Retry-After": { $ref: "#/components/headers/Retry-After" },
};
const orderId = {
  name: "id",
  in: "path",
  required: true,
  schema: { type: "string" },
  description: "An order id (`ORD-…`)",
};
const lastEventIdHeader = {
  name: "Last-Event-ID",
  in: "header",
  required: false,
  schema: { type: "string" },
  description: "The id of the last event received, to resume after it",
};
const common = (withAuth: boolean) => ({
  "503": problem(
    "The queue or store is full, too many requests are in flight, or the service is draining",
    retryAfter,
  ),
  ...(withAuth
    ? { "401": problem("Missing, malformed or wrong API key") }
    : {}),
});
const sse = (description: string) => ({
  description,
  content: {
    "text/event-stream": {
      schema: { type: "string" },
      example:
        'event: status\nid: 42\ndata: {"id":"ORD-…","status":"processing",…}\n\n',
    },
  },
});

/** Options for {@linkcode openApiDocument}. */
export interface OpenApiOptions {
  /** Whether API keys are configured (adds the bearer scheme and 401s). */
  apiKeys: boolean;
  /** Whether `/metrics` is served. */
  metrics: boolean;
  /** The service's version. */
  version: string;
}

/** Builds the OpenAPI 3.1 document for the service as configured. */
export function openApiDocument(options: OpenApiOptions): JsonObject {
  const auth = options.apiKeys;
  // Every operation states its security: with keys, the API needs one and
  // the probes and the description stay open (a browser cannot send a
  // bearer token to load /docs); without keys, all of it is open.
  const secured = { security: auth ? [{ apiKey: [] }] : [] };
  const open = { security: [] };
  const paths: JsonObject = {
    "/orders": {
      post: {
        operationId: "createOrder",
        tags: ["orders"],
        summary: "Create an order",
        description:
          "Stores the order as `pending` and queues it. With an `Idempotency-Key`, a repeat with the same body answers 200 with the order that key created, as it is now; with another body, 422.",
        ...secured,
        parameters: [{
          name: "Idempotency-Key",
          in: "header",
          required: false,
          schema: {
            type: "string",
            minLength: 1,
            maxLength: 255,
            pattern: "^[\\x21-\\x7e]+$",
          },
        }],
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
            description: "Created",
            headers: {
              Location: {
                required: true,
                schema: { type: "string" },
                description: "/orders/{id}",
              },
            },
            content: json(ref("Order")),
          },
          "200": {
            description:
              "An Idempotency-Key replay: the order that key created, in its current state",
            headers: {
              Location: {
                required: true,
                schema: { type: "string" },
                description: "/orders/{id}",
              },
              "Idempotent-Replayed": {
                required: true,
                schema: { type: "string", enum: ["true"] },
              },
            },
            content: json(ref("Order")),
          },
          "400": problem(
            "Malformed JSON, invalid UTF-8, a duplicate member name, or a bad Idempotency-Key",
          ),
          "408": problem("The body did not arrive in time"),
          "413": problem("The body exceeds 64 KiB"),
          "415": problem("The body is not declared application/json"),
          "422": problem(
            "The body breaks a rule (see `errors`), or the Idempotency-Key was used with another body",
          ),
          ...common(auth),
        },
      },
      get: {
        operationId: "listOrders",
        tags: ["orders"],
        summary: "List orders, oldest first",
        ...secured,
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
            name: "cursor",
            in: "query",
            schema: { type: "string" },
            description: "Opaque; from the previous page's Link header",
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
          "400": problem("A bad, repeated or unknown query parameter"),
          ...common(auth),
        },
      },
    },
    "/orders/{id}": {
      get: {
        operationId: "getOrder",
        tags: ["orders"],
        summary: "Read one order",
        ...secured,
        parameters: [orderId],
        responses: {
          "200": { description: "The order", content: json(ref("Order")) },
          "404": problem("No such order"),
          ...common(auth),
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
        ...secured,
        parameters: [orderId],
        responses: {
          "200": {
            description: "Cancelled",
            content: json(ref("CancelledOrder")),
          },
          "202": {
            description: "Will be cancelled at the next step boundary",
            content: json(ref("CancelledOrder")),
          },
          "404": problem("No such order"),
          "409": problem("The order has already finished"),
          ...common(auth),
        },
      },
    },
    "/orders/{id}/events": {
      get: {
        operationId: "orderEvents",
        tags: ["events"],
        summary: "Follow one order (Server-Sent Events)",
        description:
          "The first event (`order`) is the current state; then one event per change (`status`, `step_finished`, `attempt_failed`, `cancel_requested`, `interrupted`) with the order as data. Ends after a terminal status. Heartbeat comments keep idle connections open. A reconnect with `Last-Event-ID` replays the changes missed; for a finished order with nothing missed it answers 204, which makes an EventSource stop reconnecting.",
        ...secured,
        parameters: [orderId, lastEventIdHeader],
        responses: {
          "200": sse("The event stream"),
          "204": {
            description:
              "A reconnect for a finished order that missed nothing: stop reconnecting",
          },
          "404": problem("No such order"),
          ...common(auth),
        },
      },
    },
    "/events": {
      get: {
        operationId: "allEvents",
        tags: ["events"],
        summary: "Follow every order change (Server-Sent Events)",
        description:
          "Every change to every order, one event each, named after it: `created` for a new order, then `status`, `step_finished`, `attempt_failed`, `cancel_requested`, `interrupted`; the data is the order after the change. Send `Last-Event-ID` to resume without a gap; if it is too old, a `reset` event says so and the stream continues from now. A client that falls too far behind is disconnected.",
        ...secured,
        parameters: [lastEventIdHeader],
        responses: { "200": sse("The event stream"), ...common(auth) },
      },
    },
    "/health": {
      get: {
        operationId: "health",
        tags: ["operations"],
        summary: "Liveness",
        ...open,
        responses: {
          "200": {
            description: "The process runs",
            content: json(ref("Health")),
          },
        },
      },
    },
    "/ready": {
      get: {
        operationId: "ready",
        tags: ["operations"],
        summary: "Readiness",
        ...open,
        responses: {
          "200": {
            description: "Accepting orders",
            content: json(ref("Ready")),
          },
          "503": problem(
            "Draining for shutdown, or the store is refusing writes",
            retryAfter,
          ),
        },
      },
    },
    "/openapi.json": {
      get: {
        operationId: "openApi",
        tags: ["operations"],
        summary: "This document",
        ...open,
        responses: {
          "200": {
            description: "OpenAPI 3.1",
            content: json({ type: "object" }),
          },
        },
      },
    },
    "/docs": {
      get: {
        operationId: "docs",
        tags: ["operations"],
        summary:
          "Interactive API reference (Swagger UI, served by the service itself)",
        ...open,
        responses: {
          "200": {
            description: "An HTML page",
            content: { "text/html": { schema: { type: "string" } } },
          },
        },
      },
    },
    "/docs/assets/{file}": {
      get: {
        operationId: "docsAsset",
        tags: ["operations"],
        summary: "The reference page's scripts and styles",
        ...open,
        parameters: [{
          name: "file",
          in: "path",
          required: true,
          schema: { type: "string" },
        }],
        responses: {
          "200": { description: "A script or style sheet" },
          "404": problem("No such file"),
        },
      },
    },
  };
  if (options.metrics) {
    paths["/metrics"] = {
      get: {
        operationId: "metrics",
        tags: ["operations"],
        summary: "Prometheus metrics",
        ...secured,
        responses: {
          "200": {
            description: "Prometheus text format",
            content: { "text/plain": { schema: { type: "string" } } },
          },
          ...(auth
            ? { "401": problem("Missing, malformed or wrong API key") }
            : {}),
        },
      },
    };
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "order-service",
      version: options.version,
      description:
        "A concurrent order-processing service for food-delivery orders. Every error is RFC 9457 application/problem+json.",
    },
    // Relative: the service itself, at whatever address the document was
    // fetched from (Swagger UI resolves it against the page).
    servers: [{ url: "/", description: "This service" }],
    tags: [
      { name: "orders", description: "Create, read, list and cancel orders" },
      { name: "events", description: "Live order events (Server-Sent Events)" },
      {
        name: "operations",
        description: "Health, metrics and this description",
      },
    ],
    paths,
    components: {
      schemas: {
        NewOrder: schemaOf(newOrderSchema, "input"),
        Order: schemaOf(orderSchema, "output"),
        CancelledOrder: schemaOf(cancelledOrderSchema, "output"),
        Problem: schemaOf(problemSchema, "output"),
        Health: schemaOf(healthSchema, "output"),
        Ready: schemaOf(readySchema, "output"),
      },
      headers: {
        "Retry-After": {
          schema: { type: "integer" },
          description: "Seconds to wait before retrying",
        },
      },
      ...(auth
        ? {
          securitySchemes: {
            apiKey: {
              type: "http",
              scheme: "bearer",
              description: "An API key",
            },
          },
        }
        : {}),
    },
  };
}
