/**
 * The operations dashboard at `/dashboard`: one HTML page, two plain
 * scripts and a style sheet (`dashboard/app.js`, `dashboard/order_page.js`
 * for one order's page, `dashboard/app.css`, edited as they are — there is
 * no build step), uPlot for the chart, all embedded in the program and
 * served by the service; plus the JSON the page reads.
 *
 * @module
 */

import { Hono } from "hono";
import uplotCss from "uplot/dist/uPlot.min.css" with { type: "text" };
import uplotJs from "uplot/dist/uPlot.iife.min.js" with { type: "text" };
import appCss from "./dashboard/app.css" with { type: "text" };
import appJs from "./dashboard/app.js" with { type: "text" };
import orderPageJs from "./dashboard/order_page.js" with { type: "text" };
import operatorJs from "./dashboard/operator.js" with { type: "text" };
import type { DashboardStats } from "../observe/dashboard_stats.ts";
import { type Asset, assetHandler, CSS, JAVASCRIPT } from "./assets.ts";
import type { PauseState } from "../orders/processing_pause.ts";
import type { WebhookStore } from "../webhooks/webhook_store.ts";
import { endpointHealth } from "../webhooks/health.ts";
import { ORDER_STATUSES } from "../orders/order.ts";
import { toOrderJson } from "./order_json.ts";
import type { Coordination, InstanceStatus } from "../orders/coordination.ts";
import type { OrderRepository } from "../orders/order_store.ts";
import { HttpProblem, problemType } from "./problem.ts";
import {
  type DocContext,
  json,
  type PathItems,
  problemResponse,
  ref,
  unauthorized,
} from "./openapi_parts.ts";

/** The content security policy of the dashboard: this origin only. */
export const DASHBOARD_CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/** What the dashboard routes need. */
export interface DashboardOptions {
  store: Pick<OrderRepository, "get" | "list">;
  /** The instances sharing the store. */
  coordination: Pick<Coordination, "instances">;
  stats: DashboardStats;
  /** This instance's queue and workers now. */
  localStatus: () => InstanceStatus;
  /** This instance's id when several share the store. */
  instanceId?: string | undefined;
  /** `memory`, `sqlite` or `postgres`. */
  storeKind: string;
  /** Whether an operator paused processing, and since when. */
  paused: () => PauseState;
  /** Webhook endpoints, for their health; absent where not built. */
  webhooks?: WebhookStore | undefined;
  now?: () => number;
}

const statusOptions = ORDER_STATUSES.map((status) =>
  `<option value="${status}">${status}</option>`
).join("");

const countCards = ORDER_STATUSES.map((status) =>
  `<div class="card"><div class="label">${status}</div><div class="value status-${status}" id="count-${status}">—</div></div>`
).join("");

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>order-service dashboard</title>
<link rel="stylesheet" href="/dashboard/assets/uPlot.min.css">
<link rel="stylesheet" href="/dashboard/assets/app.css">
<link rel="icon" href="data:,">
</head>
<body>
<header>
  <h1>order-service</h1>
  <span id="connection" role="status">connecting…</span>
</header>
<div id="key-gate" hidden>
  <section>
    <h2>API key</h2>
    <p id="key-message"></p>
    <form id="key-form" class="inline">
      <label>Key <input id="key-input" type="password" autocomplete="off" required></label>
      <button type="submit">Open the dashboard</button>
    </form>
    <p class="muted">The key stays in this tab (sessionStorage) and is sent only in an Authorization header.</p>
  </section>
</div>
<main id="dashboard" hidden>
  <section class="wide" aria-labelledby="now-title">
    <h2 id="now-title">Now</h2>
    <p id="processing-line" class="processing"><span id="processing-state" role="status">…</span>
      <button id="processing-toggle" type="button">Pause processing</button></p>
    <div class="cards">${countCards}</div>
    <h3>Instances</h3>
    <div class="scroll"><table>
      <thead><tr><th>instance</th><th class="num">last heartbeat</th><th class="num">queue</th><th class="num">workers busy</th><th class="num">finished here: completed / failed / cancelled</th><th class="num">refused here</th><th>accepting</th></tr></thead>
      <tbody id="instances"></tbody>
    </table></div>
  </section>
  <section class="wide" aria-labelledby="throughput-title">
    <h2 id="throughput-title">Throughput, up to the last 15 minutes</h2>
    <div id="chart" role="img" aria-label="Orders created, finished, failed, retried and refused per second, and the orders queued"></div>
    <div class="figures">
      <div>created/s (10 s) <strong id="rate-created">—</strong></div>
      <div>finished/s (10 s) <strong id="rate-finished">—</strong></div>
      <div>refused/s (10 s) <strong id="rate-refused">—</strong></div>
      <div>refused since start <strong id="refused-total">—</strong></div>
      <div>queued now <strong id="queued-now">—</strong></div>
      <div>processing p50 <strong id="p50">—</strong></div>
      <div>p99 <strong id="p99">—</strong></div>
    </div>
  </section>
  <section aria-labelledby="feed-title">
    <h2 id="feed-title">Live feed</h2>
    <p><button id="pause" type="button" aria-pressed="false">Pause</button></p>
    <ul id="feed" aria-live="off"></ul>
  </section>
  <section aria-labelledby="failures-title">
    <h2 id="failures-title">Latest failures</h2>
    <form id="bulk-retry-form" class="inline" aria-label="Retry failed orders in bulk">
      <label>Restaurant <input id="bulk-restaurant" maxlength="64" autocomplete="off" spellcheck="false"></label>
      <label>Reason starts with <input id="bulk-reason" maxlength="500" autocomplete="off"></label>
      <label>Failed since <input id="bulk-after" type="datetime-local" step="1"></label>
      <button type="submit">Retry failed orders…</button>
    </form>
    <p id="retry-result" role="status"></p>
    <p id="no-failures" class="muted">No failed order waiting: none has failed since this instance started, or each was retried.</p>
    <div class="scroll"><table>
      <thead><tr><th>order</th><th>at</th><th class="num">attempts</th><th>reason</th><th><span class="visually-hidden">action</span></th></tr></thead>
      <tbody id="failures"></tbody>
    </table></div>
  </section>
  <section id="webhooks-section" hidden aria-labelledby="webhooks-title">
    <h2 id="webhooks-title">Webhook endpoints</h2>
    <p id="no-webhooks" class="muted">No endpoint is registered (POST /webhooks).</p>
    <div class="scroll"><table>
      <thead><tr><th>endpoint</th><th>last success</th><th>last failure</th><th class="num">waiting</th><th class="num">failed, last hour</th></tr></thead>
      <tbody id="webhooks"></tbody>
    </table></div>
  </section>
  <section aria-labelledby="find-title">
    <h2 id="find-title">Find an order</h2>
    <form id="search-form" class="inline" role="search">
      <label>Order id or prefix <input id="search-input" placeholder="ORD-01…" autocomplete="off" spellcheck="false"></label>
      <button type="submit">Find</button>
    </form>
    <form id="list-form" class="inline" role="search">
      <label>Status <select id="list-status"><option value="">any</option>${statusOptions}</select></label>
      <label>Customer <input id="list-customer" maxlength="64" autocomplete="off" spellcheck="false"></label>
      <label>Restaurant <input id="list-restaurant" maxlength="64" autocomplete="off" spellcheck="false"></label>
      <label>Created from <input id="list-after" type="datetime-local" step="1"></label>
      <label>to <input id="list-before" type="datetime-local" step="1"></label>
      <button type="submit">List</button>
    </form>
    <p id="results-message" class="muted" role="status"></p>
    <div class="scroll"><table>
      <thead><tr><th>order</th><th>status</th><th>customer</th><th>restaurant</th><th>created</th><th class="num">attempts</th></tr></thead>
      <tbody id="results"></tbody>
    </table></div>
    <p><button id="next-page" type="button" hidden>Next page</button></p>
  </section>
  <section id="order" hidden aria-labelledby="order-title">
    <h2 id="order-title" tabindex="-1">Order</h2>
    <p>
      <button id="cancel" type="button" class="danger">Cancel this order</button>
      <button id="retry" type="button" hidden>Retry this order</button>
      <span id="cancel-result" role="status"></span>
      <button id="close-order" type="button">Close</button>
    </p>
    <div id="order-body"></div>
  </section>
</main>
<script src="/dashboard/assets/uPlot.iife.min.js"></script>
<script src="/dashboard/assets/app.js"></script>
<script src="/dashboard/assets/order_page.js"></script>
<script src="/dashboard/assets/operator.js"></script>
</body>
</html>
`;

const ASSETS = new Map<string, Asset>([
  ["app.js", { body: appJs, type: JAVASCRIPT }],
  ["order_page.js", { body: orderPageJs, type: JAVASCRIPT }],
  ["operator.js", { body: operatorJs, type: JAVASCRIPT }],
  ["app.css", { body: appCss, type: CSS }],
  ["uPlot.iife.min.js", { body: uplotJs, type: JAVASCRIPT }],
  ["uPlot.min.css", { body: uplotCss, type: CSS }],
]);

const PREFIX = /^ORD-[0-9A-Z]{0,26}$/;

/** Creates `/dashboard`, its assets and `/dashboard/api/…`. */
export function dashboardRoutes(options: DashboardOptions) {
  const now = options.now ?? Date.now;
  return new Hono()
    .get("/dashboard", (c) => c.html(PAGE))
    // no-cache: a newer program's page must not run an older script.
    .get("/dashboard/assets/:file", assetHandler(ASSETS, "no-cache"))
    .get("/dashboard/api/summary", async (c) => {
      const local = {
        id: options.instanceId ?? "this instance",
        self: true,
        heartbeat_at: null as number | null,
        status: options.localStatus(),
      };
      // The instance table is small (one row per live instance).
      const shared = await options.coordination.instances();
      const instances = shared.length === 0 ? [local] : shared.map((
        instance,
      ) =>
        instance.id === options.instanceId
          ? { ...instance, self: true, status: options.localStatus() }
          : { ...instance, self: false }
      );
      const pause = options.paused();
      return c.json({
        at: now(),
        store: options.storeKind,
        paused: pause.paused,
        paused_since: pause.since,
        // Each instance's count since it started, as its status says.
        refused: instances.reduce(
          (sum, instance) => sum + (instance.status?.refused ?? 0),
          0,
        ),
        instances,
        ...options.stats.figures(),
      });
    })
    .get("/dashboard/api/webhooks", async (c) => {
      const store = options.webhooks;
      if (!store) return c.json({ available: false, endpoints: [] }, 200);
      const at = now();
      const endpoints = await store.endpoints();
      return c.json({
        available: true,
        endpoints: await Promise.all(
          endpoints.map((endpoint) => endpointHealth(store, endpoint, at)),
        ),
      }, 200);
    })
    .get("/dashboard/api/orders", async (c) => {
      const prefix = (c.req.query("prefix") ?? "").toUpperCase();
      const limit = Number(c.req.query("limit") ?? "20");
      if (!PREFIX.test(prefix)) {
        throw new HttpProblem(
          400,
          "Bad Request",
          "prefix must be the start of an order id: ORD- and up to 26 of 0-9 A-Z",
          { type: problemType("invalid-query") },
        );
      }
      if (!Number.isInteger(limit) || limit < 1 || limit > 100) {
        throw new HttpProblem(
          400,
          "Bad Request",
          "limit must be an integer from 1 to 100",
          { type: problemType("invalid-query") },
        );
      }
      // Ids sort as strings, so every id with this prefix follows it
      // directly: one page read from the prefix on, cut where they stop.
      const page = await options.store.list({ after: prefix, limit });
      const exact = await options.store.get(prefix);
      const orders = [
        ...(exact ? [exact] : []),
        ...page.orders.filter((order) => order.id.startsWith(prefix)),
      ].slice(0, limit);
      return c.json(orders.map(toOrderJson), 200);
    });
}

/** The OpenAPI operations of the dashboard. */
export function dashboardDocs(ctx: DocContext): PathItems {
  return {
    "/dashboard": {
      get: {
        operationId: "dashboard",
        tags: ["operations"],
        summary:
          "The operations dashboard (HTML, served by the service itself; it asks for a key when keys are set)",
        ...ctx.open,
        responses: {
          "200": {
            description: "An HTML page",
            content: { "text/html": { schema: { type: "string" } } },
          },
        },
      },
    },
    "/dashboard/assets/{file}": {
      get: {
        operationId: "dashboardAsset",
        tags: ["operations"],
        summary: "The dashboard's scripts and styles",
        ...ctx.open,
        parameters: [{
          name: "file",
          in: "path",
          required: true,
          schema: { type: "string" },
        }],
        responses: {
          "200": { description: "A script or style sheet" },
          "404": problemResponse("No such file"),
        },
      },
    },
    "/dashboard/api/summary": {
      get: {
        operationId: "dashboardSummary",
        tags: ["operations"],
        summary: "What the dashboard shows now",
        description:
          "Counts by status, kept from order events after one count at start (never a count over the orders table per request); every live instance with its queue and workers (one row without a shared store); orders created, finished and failed per second over the last 15 minutes; processing time p50/p99 of the last 1,024 completed orders; the latest 20 failures. With PostgreSQL the counts, rates and failures are every instance's.",
        ...ctx.secured,
        responses: {
          "200": {
            description: "The summary",
            content: json(ref("DashboardSummary")),
          },
          ...unauthorized(ctx),
        },
      },
    },
    "/dashboard/api/webhooks": {
      get: {
        operationId: "dashboardWebhookHealth",
        tags: ["operations"],
        summary: "Every webhook endpoint's health",
        description:
          "From each endpoint's latest 500 deliveries: the last success and failure (with its error), the messages waiting, and the attempts that failed in the last hour. `available` is false where webhooks are not built.",
        ...ctx.secured,
        responses: {
          "200": {
            description: "The endpoints' health",
            content: json({
              type: "object",
              properties: {
                available: { type: "boolean" },
                endpoints: {
                  type: "array",
                  items: {
                    type: "object",
                    properties: {
                      id: { type: "string" },
                      url: { type: "string" },
                      enabled: { type: "boolean" },
                      disabled_reason: { type: ["string", "null"] },
                      last_success_at: { type: ["integer", "null"] },
                      last_failure_at: { type: ["integer", "null"] },
                      last_error: { type: ["string", "null"] },
                      backlog: { type: "integer" },
                      failures_last_hour: { type: "integer" },
                      complete: {
                        type: "boolean",
                        description:
                          "False when the endpoint has more deliveries than the 500 read",
                      },
                    },
                  },
                },
              },
            }),
          },
          ...unauthorized(ctx),
        },
      },
    },
    "/dashboard/api/orders": {
      get: {
        operationId: "dashboardFindOrders",
        tags: ["operations"],
        summary: "Orders whose id starts with a prefix, oldest first",
        ...ctx.secured,
        parameters: [{
          name: "prefix",
          in: "query",
          required: true,
          schema: { type: "string", pattern: "^ORD-[0-9A-Za-z]{0,26}$" },
        }, {
          name: "limit",
          in: "query",
          required: false,
          schema: { type: "integer", minimum: 1, maximum: 100, default: 20 },
        }],
        responses: {
          "200": {
            description: "Matching orders",
            content: json({ type: "array", items: ref("Order") }),
          },
          "400": problemResponse("The prefix or limit is not valid"),
          ...unauthorized(ctx),
        },
      },
    },
  };
}

/** The JSON Schema of the summary, for the OpenAPI components. */
export const DASHBOARD_SUMMARY_SCHEMA = {
  type: "object",
  required: [
    "at",
    "store",
    "paused",
    "paused_since",
    "refused",
    "instances",
    "counts",
    "throughput",
    "processing_ms",
    "recent_failures",
  ],
  properties: {
    at: { type: "integer", description: "Epoch milliseconds" },
    store: { type: "string", enum: ["memory", "sqlite", "postgres"] },
    paused: {
      type: "boolean",
      description: "Whether an operator paused processing",
    },
    paused_since: {
      type: ["integer", "null"],
      description:
        "Epoch milliseconds of the last pause or resume; null if never",
    },
    refused: {
      type: "integer",
      description:
        "New orders refused for a full queue, by the live instances since each started",
    },
    instances: {
      type: "array",
      items: {
        type: "object",
        required: ["id", "self", "heartbeat_at", "status"],
        properties: {
          id: { type: "string" },
          self: { type: "boolean" },
          started_at: { type: "integer" },
          heartbeat_at: { type: ["integer", "null"] },
          status: {
            type: ["object", "null"],
            properties: {
              queue_depth: { type: "integer" },
              queue_capacity: { type: "integer" },
              workers_busy: { type: "integer" },
              workers_total: { type: "integer" },
              accepting: { type: "boolean" },
              paused: { type: "boolean" },
              refused: {
                type: "integer",
                description:
                  "New orders refused for a full queue since it started",
              },
              finished: {
                type: "object",
                description:
                  "Orders this instance finished since it started, by status",
                properties: {
                  completed: { type: "integer" },
                  failed: { type: "integer" },
                  cancelled: { type: "integer" },
                },
              },
            },
          },
        },
      },
    },
    counts: {
      type: "object",
      properties: Object.fromEntries(
        ORDER_STATUSES.map((status) => [status, { type: "integer" }]),
      ),
    },
    throughput: {
      type: "object",
      properties: {
        start: {
          type: "integer",
          description: "Epoch seconds of the first bucket",
        },
        created: { type: "array", items: { type: "integer" } },
        finished: { type: "array", items: { type: "integer" } },
        failed: { type: "array", items: { type: "integer" } },
        retried: { type: "array", items: { type: "integer" } },
        refused: {
          type: "array",
          items: { type: "integer" },
          description:
            "New orders refused for a full queue (sampled each second)",
        },
        queue_depth: {
          type: "array",
          items: { type: "integer" },
          description: "Orders queued on every instance, sampled each second",
        },
      },
    },
    processing_ms: {
      type: "object",
      properties: {
        p50: { type: ["number", "null"] },
        p99: { type: ["number", "null"] },
        samples: { type: "integer" },
      },
    },
    recent_failures: {
      type: "array",
      items: {
        type: "object",
        properties: {
          id: { type: "string" },
          failure_reason: { type: ["string", "null"] },
          attempts: { type: "integer" },
          attempt_reasons: { type: "array", items: { type: "string" } },
          at: { type: "integer" },
        },
      },
    },
  },
} as const;
