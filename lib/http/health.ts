/**
 * Liveness and readiness.
 *
 * @module
 */

import { Hono } from "hono";
import { problem, problemType } from "./problem.ts";
import {
  type DocContext,
  json,
  type PathItems,
  problemResponse,
  ref,
  retryAfter,
} from "./openapi_parts.ts";

/** Creates the `/health` and `/ready` routes. */
export function healthRoutes(
  options: {
    isAccepting: () => boolean;
    /** Why the store cannot serve this instance now (writes, lease, claims). */
    storeProblem: () => string | undefined;
  },
) {
  return new Hono()
    // Liveness: the process runs and its event loop answers.
    .get("/health", (c) => c.json({ status: "ok" }, 200))
    // Readiness: load balancers stop sending orders once this turns 503.
    .get("/ready", (c) => {
      const storeProblem = options.storeProblem();
      if (storeProblem !== undefined) {
        return problem(c, {
          type: problemType("store-unavailable"),
          title: "Service Unavailable",
          status: 503,
          detail: storeProblem,
        }, { "retry-after": "5" });
      }
      if (options.isAccepting()) return c.json({ status: "ready" }, 200);
      return problem(c, {
        type: problemType("draining"),
        title: "Service Unavailable",
        status: 503,
        detail: "The service is draining and accepts no new orders",
      }, { "retry-after": "5" });
    });
}

/**
 * The OpenAPI operations of `/health` and `/ready`.
 */
export function healthDocs(ctx: DocContext): PathItems {
  return {
    "/health": {
      get: {
        operationId: "health",
        tags: ["operations"],
        summary: "Liveness",
        ...ctx.open,
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
        ...ctx.open,
        responses: {
          "200": {
            description: "Accepting orders",
            content: json(ref("Ready")),
          },
          "503": problemResponse(
            "Draining for shutdown, or the store is refusing writes",
            retryAfter,
          ),
        },
      },
    },
  };
}
