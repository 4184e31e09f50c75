/**
 * The OpenAPI 3.1 document, generated from the zod schemas that validate
 * requests and describe responses (zod's own JSON Schema output: OpenAPI
 * 3.1 schemas are JSON Schema 2020-12). Each route file describes its own
 * operations next to its handlers (`ordersDocs` in `orders.ts` …); this file
 * puts them together. A test compares the paths with the app's routes, so
 * neither can gain an entry the other lacks.
 *
 * @module
 */

import { z } from "zod";
import { DASHBOARD_SUMMARY_SCHEMA, dashboardDocs } from "./dashboard.ts";
import { docsDocs } from "./docs.ts";
import { eventsDocs } from "./events.ts";
import { healthDocs } from "./health.ts";
import { metricsDocs } from "./metrics.ts";
import type { DocContext, JsonObject, PathItems } from "./openapi_parts.ts";
import { ordersDocs } from "./orders.ts";
import {
  bulkRetryResultSchema,
  bulkRetrySchema,
  cancelledOrderSchema,
  healthSchema,
  newOrderSchema,
  orderSchema,
  problemSchema,
  processingSchema,
  readySchema,
} from "./schemas.ts";
import { processingDocs } from "./processing.ts";
import {
  deliverySchema,
  endpointChangesSchema,
  endpointSchema,
  endpointWithSecretSchema,
  newEndpointSchema,
  recoveredSchema,
  recoverSchema,
  rotatedSecretSchema,
  webhookDocs,
} from "./webhooks.ts";

function schemaOf(schema: z.ZodType, io: "input" | "output"): JsonObject {
  const { $schema: _, ...json } = z.toJSONSchema(schema, {
    target: "draft-2020-12",
    io,
    unrepresentable: "any",
  }) as JsonObject;
  return json;
}

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
  const ctx: DocContext = { auth, secured, open };
  // Each route file describes its own operations, next to its handlers.
  const paths: PathItems = {
    ...ordersDocs(ctx),
    ...eventsDocs(ctx),
    ...healthDocs(ctx),
    ...processingDocs(ctx),
    ...webhookDocs(ctx),
    ...docsDocs(ctx),
    ...dashboardDocs(ctx),
    ...(options.metrics ? metricsDocs(ctx) : {}),
  };
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
        name: "webhooks",
        description: "Endpoints that receive signed messages about orders",
      },
      {
        name: "operations",
        description: "Health, metrics, the dashboard and this description",
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
        Processing: schemaOf(processingSchema, "output"),
        BulkRetry: schemaOf(bulkRetrySchema, "input"),
        BulkRetryResult: schemaOf(bulkRetryResultSchema, "output"),
        NewWebhookEndpoint: schemaOf(newEndpointSchema, "input"),
        WebhookEndpointChanges: schemaOf(endpointChangesSchema, "input"),
        WebhookEndpoint: schemaOf(endpointSchema, "output"),
        WebhookEndpointWithSecret: schemaOf(endpointWithSecretSchema, "output"),
        RotatedWebhookSecret: schemaOf(rotatedSecretSchema, "output"),
        WebhookRecover: schemaOf(recoverSchema, "input"),
        WebhookRecovered: schemaOf(recoveredSchema, "output"),
        WebhookDelivery: schemaOf(deliverySchema, "output"),
        DashboardSummary: DASHBOARD_SUMMARY_SCHEMA,
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
