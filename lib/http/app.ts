/**
 * The HTTP application: routes, the not-found and method-not-allowed
 * answers, and the one error handler.
 *
 * @module
 */

import type { Logger } from "@logtape/logtape";
import { Hono, type MiddlewareHandler } from "hono";
import { cors } from "hono/cors";
import type { OrderEventHub } from "../observe/events.ts";
import type { ServiceMetrics } from "../observe/metrics.ts";
import { type DashboardOptions, dashboardRoutes } from "./dashboard.ts";
import { docsRoutes } from "./docs.ts";
import { eventRoutes } from "./events.ts";
import { openApiDocument } from "./openapi.ts";
import type { OrderService } from "../orders/order_service.ts";
import type { BulkRetry } from "../orders/bulk_retry.ts";
import type { Coordination, OrderRepository } from "../orders/order_store.ts";
import type { StoreHealth } from "../orders/store_health.ts";
import { apiKeyAuth, UNAUTHENTICATED_PATHS } from "./auth.ts";
import { healthRoutes } from "./health.ts";
import { requestContext } from "./request_context.ts";
import type { BodyLimits } from "./json_body.ts";
import { metricsRoutes } from "./metrics.ts";
import { ordersRoutes } from "./orders.ts";
import { webhookRoutes, type WebhookRoutesOptions } from "./webhooks.ts";
import {
  processingRoutes,
  type ProcessingRoutesOptions,
} from "./processing.ts";
import type { Peers } from "./peers.ts";
import { problem, problemFor } from "./problem.ts";

/** The service's version, as the API description states it. */
export const SERVICE_VERSION = "0.1.0";

/** What the application needs. */
export interface AppOptions {
  store: OrderRepository;
  /** The live instances (dashboard) and every instance's changes (events). */
  coordination: Pick<Coordination, "instances" | "changeFeed">;
  service: OrderService;
  /** An operator's retry of failed orders in bulk. */
  bulkRetry: BulkRetry;
  /** `/ready` answers 503 while the store refuses writes. */
  storeHealth?: StoreHealth | undefined;
  logger: Logger;
  /** Limits on reading a request body (defaults: 64 KiB, 10 s). */
  bodyLimits?: Partial<BodyLimits> | undefined;
  /** Requests handled at once before 503 (default 1024). */
  maxInFlight?: number | undefined;
  /** When non-empty, every endpoint needs one but the probes, /openapi.json and /docs. */
  apiKeys?: readonly string[] | undefined;
  /** Where live order events come from. */
  hub: OrderEventHub;
  /** Serves `/metrics` and counts requests when given. */
  metrics?: ServiceMetrics | undefined;
  /** Origins allowed to call the API from a browser; none by default. */
  corsOrigins?: readonly string[] | undefined;
  /** Event streams' heartbeat interval (default 15 s). */
  heartbeatMs?: number | undefined;
  /** X-Request-Id on every response (default on). */
  requestIds?: boolean | undefined;
  /** The process's other isolates, when it runs several. */
  peers?: Peers | undefined;
  /** Webhook endpoints and deliveries. */
  webhooks: WebhookRoutesOptions;
  /** The operator's pause switch. */
  processing: ProcessingRoutesOptions;
  /** Serves `/dashboard` when given. */
  dashboard?: Omit<DashboardOptions, "store" | "coordination"> | undefined;
}

/**
 * Creates the application. Call `app.fetch` from `Deno.serve`, or
 * `app.request()` in tests.
 *
 * @example
 * ```ts
 * import { createApp } from "./app.ts";
 * // const app = createApp({ store, service, logger });
 * // Deno.serve(app.fetch);
 * ```
 */
export function createApp(options: AppOptions) {
  const { logger } = options;
  const base = new Hono();
  // Request id, in-flight bound, security headers and HTTP metrics: one
  // layer, because each async middleware layer is a measurable cost per
  // request (lib/http/request_context.ts).
  base.use(requestContext({
    maxInFlight: options.maxInFlight ?? 1024,
    exempt: UNAUTHENTICATED_PATHS,
    metrics: options.metrics,
    requestIds: options.requestIds ?? true,
  }));
  // Per-request lines only at debug level, decided once: when not wanted
  // the middleware is not there at all.
  if (logger.isEnabledFor("debug")) base.use(requestLogging(logger));
  if (options.corsOrigins?.length) {
    base.use(cors({
      origin: [...options.corsOrigins],
      allowHeaders: [
        "Content-Type",
        "Authorization",
        "Idempotency-Key",
        "X-Request-Id",
        "Last-Event-ID",
        "Prefer",
      ],
      exposeHeaders: [
        "Location",
        "Link",
        "Retry-After",
        "X-Request-Id",
        "Idempotent-Replayed",
        "Preference-Applied",
      ],
      maxAge: 600,
    }));
  }
  if (options.apiKeys?.length) base.use(apiKeyAuth(options.apiKeys));
  if (options.metrics) {
    base.route("/", metricsRoutes(options.metrics, options.peers));
  }
  if (options.dashboard) {
    base.route(
      "/",
      dashboardRoutes({
        ...options.dashboard,
        store: options.store,
        coordination: options.coordination,
      }),
    );
  }
  const app = base
    .route("/orders", ordersRoutes(options))
    .route(
      "/",
      eventRoutes({
        hub: options.hub,
        store: options.store,
        coordination: options.coordination,
        heartbeatMs: options.heartbeatMs,
      }),
    )
    .route(
      "/",
      healthRoutes({
        isAccepting: () => options.service.accepting,
        storeProblem: () => options.storeHealth?.problem,
        peers: options.peers,
        paused: () => options.processing.state().paused,
      }),
    )
    .route("/", processingRoutes(options.processing))
    .route("/", webhookRoutes(options.webhooks))
    .route(
      "/",
      docsRoutes({
        document: () =>
          openApiDocument({
            apiKeys: Boolean(options.apiKeys?.length),
            metrics: Boolean(options.metrics),
            version: SERVICE_VERSION,
          }),
      }),
    );

  const allowed = allowedMethods(app.routes);

  app.notFound((c) => {
    const methods = allowed(c.req.path);
    // 405 only when the path exists and the method is not one of its own;
    // a route that found nothing (an unknown asset) is a plain 404.
    if (methods.length > 0 && !methods.includes(c.req.method)) {
      return problem(c, {
        type: "about:blank",
        title: "Method Not Allowed",
        status: 405,
        detail: `${c.req.method} is not allowed on ${c.req.path}; use ${
          methods.join(", ")
        }`,
      }, { allow: methods.join(", ") });
    }
    return problem(c, {
      type: "about:blank",
      title: "Not Found",
      status: 404,
      detail: `No resource at ${c.req.path}`,
    });
  });

  app.onError((error, c) => {
    const response = problemFor(error, c);
    if (response) return response;
    logger.error("Unhandled error on {method} {path}: {error}", {
      requestId: c.get("requestId"),
      method: c.req.method,
      path: c.req.path,
      error,
    });
    return problem(c, {
      type: "about:blank",
      title: "Internal Server Error",
      status: 500,
      detail: "The server failed to handle the request",
    });
  });

  return app;
}

function requestLogging(logger: Logger): MiddlewareHandler {
  return async (c, next) => {
    const startedAt = performance.now();
    await next();
    logger.debug("{method} {path} {status}", {
      requestId: c.get("requestId"),
      method: c.req.method,
      path: c.req.path,
      status: c.res.status,
      durationMs: Math.round((performance.now() - startedAt) * 1000) / 1000,
    });
  };
}

/** The application's type, for Hono's typed client (`hc<AppType>`). */
export type AppType = ReturnType<typeof createApp>;

/**
 * Builds a lookup from a path to the methods that routes declare for it,
 * from the routes themselves so it cannot drift from them.
 */
function allowedMethods(
  routes: ReadonlyArray<{ method: string; path: string }>,
): (path: string) => string[] {
  const patterns = new Map<string, { regex: RegExp; methods: Set<string> }>();
  for (const route of routes) {
    if (route.method === "ALL") continue;
    let entry = patterns.get(route.path);
    if (!entry) {
      const source = route.path
        .split("/")
        .map((part) =>
          part.startsWith(":")
            ? "[^/]+"
            : part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")
        )
        .join("/");
      // Exact: "/orders/" is not "/orders" (Hono routes strictly), so it is
      // a 404, never a 405 that names the method just used.
      entry = { regex: new RegExp(`^${source}$`), methods: new Set() };
      patterns.set(route.path, entry);
    }
    entry.methods.add(route.method);
    if (route.method === "GET") entry.methods.add("HEAD");
  }
  return (path) => {
    const methods = new Set<string>();
    for (const { regex, methods: declared } of patterns.values()) {
      if (regex.test(path)) {
        for (const method of declared) methods.add(method);
      }
    }
    return [...methods].sort();
  };
}
