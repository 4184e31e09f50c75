/**
 * `GET /metrics`: the Prometheus scrape endpoint.
 *
 * @module
 */

import { Hono } from "hono";
import client from "prom-client";
import type { ServiceMetrics } from "../observe/metrics.ts";
import type { Peers } from "./peers.ts";
import {
  type DocContext,
  type PathItems,
  unauthorized,
} from "./openapi_parts.ts";

/**
 * Creates the `/metrics` route. With `peers`, one exposition for the whole
 * process: every isolate's metrics summed, as prom-client's
 * `AggregatorRegistry` sums a Node cluster's workers.
 */
export function metricsRoutes(metrics: ServiceMetrics, peers?: Peers) {
  return new Hono().get(
    "/metrics",
    async (c) => {
      const text = peers
        ? await client.AggregatorRegistry.aggregate(
          // deno-lint-ignore no-explicit-any
          await peers.metrics() as any,
        ).metrics()
        : await metrics.render();
      return c.body(text, 200, { "content-type": metrics.contentType });
    },
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
