/**
 * The one middleware every request passes: its id, the in-flight bound,
 * the security headers and the HTTP metrics, in a single async layer.
 *
 * @module
 */

import type { Context, MiddlewareHandler, TypedResponse } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type {} from "hono/request-id"; // types c.get("requestId")
import { trace } from "@opentelemetry/api";
import { routeLabel, type ServiceMetrics } from "../observe/metrics.ts";
import { DASHBOARD_CSP } from "./dashboard.ts";
import { DOCS_CSP } from "./docs.ts";
import { problem, problemType } from "./problem.ts";

/** What {@linkcode requestContext} needs. */
export interface RequestContextOptions {
  /** Requests handled at once before 503. */
  maxInFlight: number;
  /** Paths exempt from the in-flight bound (probes must see the truth). */
  exempt: ReadonlySet<string>;
  /** Counts and times every request when given. */
  metrics?: ServiceMetrics | undefined;
  /** Gives each request an id and answers with it (off only to measure it). */
  requestIds?: boolean;
}

// Responses built by `jsonResponse` already carry the request id and
// nosniff; the rest get them after the handler.
const COMPLETE = new WeakSet<Response>();

const SAFE_REQUEST_ID = /^[\w\-=]{1,128}$/;

/**
 * A JSON response with every header the request context would add, built
 * without a `Headers` object. Hono's `c.json()` goes through a `Headers` object
 * per response, which is measurably dearer on the hot routes (wrk against
 * a bare `Deno.serve`: a plain object of four headers ~25–32k req/s, a
 * `Headers` object ~21–24k, Hono's prepared headers ~20k). `text` is the
 * body already serialised (e.g. by `orderJsonText`) and must be the JSON of
 * a `T`: the answer is typed as Hono's `c.json()` answer for hc<AppType>.
 * `headers` are added to these three and must not repeat them.
 *
 * The headers reach `Response` as a list of pairs, not an object: Deno
 * 2.9's conversion of a header record costs more than that of a sequence
 * (measured with `deno bench` on `new Response` with the 201's headers).
 */
export function jsonResponse<T, S extends ContentfulStatusCode>(
  c: Context,
  text: string,
  status: S,
  headers: Record<string, string> = {},
): Response & TypedResponse<T, S, "json"> {
  const requestId = c.get("requestId");
  const pairs: [string, string][] = [
    ["content-type", "application/json"],
    ["x-content-type-options", "nosniff"],
  ];
  if (requestId !== undefined) pairs.push(["x-request-id", requestId]);
  for (const name in headers) pairs.push([name, headers[name]!]);
  const response = new Response(text, { status, headers: pairs });
  COMPLETE.add(response);
  // Typed as Hono's c.json() answer, so hc<AppType> still knows the body.
  return response as Response & TypedResponse<T, S, "json">;
}

/**
 * The id of `request`: the client's `X-Request-Id` when it is 1–128
 * characters of `A-Z a-z 0-9 _ - =`, else a new UUID.
 */
export function requestIdOf(request: Request): string {
  const given = request.headers.get("x-request-id");
  return given !== null && SAFE_REQUEST_ID.test(given)
    ? given
    : crypto.randomUUID();
}

/**
 * Gives each request its id (the client's `X-Request-Id` when it is 1–128
 * characters of `A-Z a-z 0-9 _ - =`, else a new UUID), answers 503 at once
 * past `maxInFlight` requests in progress, adds `X-Request-Id` and
 * `X-Content-Type-Options: nosniff` to every response (and the page
 * headers to `/docs`), and counts and times the request by route pattern.
 *
 * Security headers: every response header costs Deno's HTTP server a few
 * microseconds (four more headers took a third off a bare handler's
 * throughput), so API responses, which are JSON and never rendered, carry
 * only nosniff; the one HTML page, /docs, gets the headers that protect a
 * page.
 */
export function requestContext(
  options: RequestContextOptions,
): MiddlewareHandler {
  const { maxInFlight, exempt, metrics } = options;
  const requestIds = options.requestIds ?? true;
  if (!Number.isInteger(maxInFlight) || maxInFlight < 1) {
    throw new RangeError(
      `Cannot limit requests: maxInFlight must be a positive integer, received "${maxInFlight}"`,
    );
  }
  let inFlight = 0;
  return async (c, next) => {
    const startedAt = metrics ? performance.now() : 0;
    let id: string | undefined;
    if (requestIds) {
      id = requestIdOf(c.req.raw);
      c.set("requestId", id);
    }
    let response: Response;
    if (inFlight >= maxInFlight && !exempt.has(c.req.path)) {
      response = problem(c, {
        type: problemType("too-many-requests-in-flight"),
        title: "Service Unavailable",
        status: 503,
        detail:
          `The service is handling its maximum of ${maxInFlight} requests; retry shortly`,
      }, { "retry-after": "1" });
      c.res = response;
    } else {
      inFlight++;
      try {
        await next();
      } finally {
        inFlight--;
      }
      response = c.res;
    }
    if (!COMPLETE.has(response)) {
      const headers = response.headers;
      if (id !== undefined) headers.set("x-request-id", id);
      headers.set("x-content-type-options", "nosniff");
      if (c.req.path.startsWith("/docs")) {
        headers.set("content-security-policy", DOCS_CSP);
        headers.set("x-frame-options", "DENY");
        headers.set("referrer-policy", "no-referrer");
      } else if (c.req.path.startsWith("/dashboard")) {
        headers.set("content-security-policy", DASHBOARD_CSP);
        headers.set("x-frame-options", "DENY");
        headers.set("referrer-policy", "no-referrer");
      }
    }
    // With OpenTelemetry on, Deno's span of this request is named by the
    // method alone; the route pattern names it as the semantic
    // conventions ask (never the raw path: one name per order id).
    const span = trace.getActiveSpan();
    if (span !== undefined) {
      const route = routeLabel(c.req.routePath);
      span.setAttribute("http.route", route);
      span.updateName(`${c.req.method} ${route}`);
    }
    metrics?.recordRequest(
      c.req.method,
      c.req.routePath,
      response.status,
      (performance.now() - startedAt) / 1000,
    );
  };
}
