/**
 * `GET /metrics`: the Prometheus scrape endpoint.
 *
 * @module
 */

import { Hono } from "hono";
import type { ServiceMetrics } from "../observe/metrics.ts";
import {
  type DocContext,
  type PathItems,
  unauthorized,
} from "./openapi_parts.ts";

/** Creates the `/metrics` route. */
export function metricsRoutes(metrics: ServiceMetrics) {
  return new Hono().get(
    "/metrics",
    async (c) =>
      c.body(await metrics.render(), 200, {
        "content-type": metrics.contentType,
      }),
  );
}

/** The OpenAPI operation of `/metrics`. */
export function metricsDocs(ctx: DocContext): PathItems {
  return {
    "/metrics": {
      get: {
        operationId: "metrics",
        tags: ["operations"],
        summary: "Prometheus metrics",
        ...ctx.secured,
        responses: {
          "200": {
            description: "Prometheus text format",
            content: { "text/plain": { schema: { type: "string" } } },
          },
          ...unauthorized(ctx),
        },
      },
    },
  };
}
