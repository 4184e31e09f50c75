/**
 * Which isolate answers a request when the isolates divide the orders
 * (`PARALLEL` with a store that is not shared): a cancel, a retry, or an
 * order's event stream, goes to the isolate whose shard holds the order
 * (every change to an order happens there, so its stream is there too);
 * where each isolate holds a shard, a keyed POST to the isolate that owns
 * its key (so that retries on other connections find the same lock and the
 * same order); every change stream and the dashboard's figures to the first
 * isolate, which hears every isolate's changes; an operator's pause, resume
 * or bulk retry to the first isolate too, which records it and tells the
 * rest. The rest is answered where
 * it arrives: a read of one order fetches it from its shard as data
 * (`store/sharded.ts`), which costs less than sending the whole request
 * across, or reads it from the file every isolate opens.
 *
 * @module
 */

import { shardOfId, shardOfKey } from "../orders/order_id.ts";
import { PROBLEM_CONTENT_TYPE, problemType } from "./problem.ts";
import { requestIdOf } from "./request_context.ts";

const OPERATOR_PATHS = new Set([
  "/processing/pause",
  "/processing/resume",
  "/orders/retry",
]);

const ORDER_CHANGE_PATH = /^\/orders\/([^/]+)\/(?:cancel|retry|events)$/;

/**
 * The shard (from 0) that must answer `request`, or `undefined` for any.
 * A keyed POST goes to its key's shard unless `keysHop` is false.
 */
export function shardFor(
  request: Request,
  count: number,
  keysHop = true,
): number | undefined {
  const { pathname } = new URL(request.url);
  const order = ORDER_CHANGE_PATH.exec(pathname);
  if (order) return shardOfId(decodeURIComponent(order[1]!), count);
  if (keysHop && pathname === "/orders" && request.method === "POST") {
    const key = request.headers.get("idempotency-key");
    return key === null ? undefined : shardOfKey(key, count);
  }
  if (pathname === "/events" || pathname === "/dashboard/api/summary") {
    return 0;
  }
  // An operator's switch: the first isolate records it and tells the rest.
  if (request.method === "POST" && OPERATOR_PATHS.has(pathname)) return 0;
  return undefined;
}

/**
 * A fetch handler that answers a request here when this isolate (shard
 * `index`) may, and otherwise hands it to the one that must.
 */
export function shardRouter(options: {
  index: number;
  count: number;
  /** Whether a keyed POST goes to its key's shard (default true). */
  keysHop?: boolean;
  /** Whether answers carry `X-Request-Id` (`REQUEST_IDS`; default true). */
  requestIds?: boolean;
  local: (request: Request) => Response | Promise<Response>;
  forward: (index: number, request: Request) => Promise<Response>;
}): (request: Request) => Response | Promise<Response> {
  const { index, count, keysHop = true, requestIds = true, local, forward } =
    options;
  return (request) => {
    const shard = shardFor(request, count, keysHop);
    if (shard === undefined || shard === index) return local(request);
    // The owner gone (an isolate stopping): say so, as for a store that
    // cannot answer, with what the app's request context gives every answer.
    return forward(shard, request).catch(() => {
      const requestId = requestIds ? requestIdOf(request) : undefined;
      return Response.json({
        type: problemType("store-unavailable"),
        title: "Service Unavailable",
        status: 503,
        detail: "The isolate holding this order cannot answer now",
        instance: new URL(request.url).pathname,
        ...(requestId === undefined ? {} : { request_id: requestId }),
      }, {
        status: 503,
        headers: {
          "content-type": PROBLEM_CONTENT_TYPE,
          "retry-after": "1",
          "x-content-type-options": "nosniff",
          ...(requestId === undefined ? {} : { "x-request-id": requestId }),
        },
      });
    });
  };
}
