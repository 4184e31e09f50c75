/**
 * Liveness and readiness.
 *
 * @module
 */

import { Hono } from "hono";
import type { Peers, Readiness } from "./peers.ts";
import { problem, problemType } from "./problem.ts";
import {
  type DocContext,
  json,
  type PathItems,
  problemResponse,
  ref,
  retryAfter,
} from "./openapi_parts.ts";

/** What decides readiness in this isolate. */
export interface ReadinessOptions {
  isAccepting: () => boolean;
  /** Why the store cannot serve this instance now (writes, lease, claims). */
  storeProblem: () => string | undefined;
}

/** Why this isolate is not ready, or `undefined` when it is. */
export function readiness(options: ReadinessOptions): Readiness | undefined {
  const storeProblem = options.storeProblem();
  if (storeProblem !== undefined) {
    return { type: "store-unavailable", detail: storeProblem };
  }
  if (!options.isAccepting()) {
    return {
      type: "draining",
      detail: "The service is draining and accepts no new orders",
    };
  }
  return undefined;
}

/**
 * Creates the `/health` and `/ready` routes. With `peers`, `/ready` answers
 * for every isolate of the process.
 */
export function healthRoutes(
  options: ReadinessOptions & {
    peers?: Peers | undefined;
    /** Whether an operator paused processing (still ready: it takes orders). */
    paused?: () => boolean;
  },
) {
  const processing = () => options.paused?.() ? "paused" : "running";
  return new Hono()
    // Liveness: the process runs and its event loop answers.
    .get("/health", (c) => c.json({ status: "ok", processing: processing() }))
    // Readiness: load balancers stop sending orders once this turns 503.
    // A pause keeps it ready: intake goes on until the queue is full.
    .get("/ready", async (c) => {
      const why = readiness(options) ?? await options.peers?.notReady();
      if (why === undefined) {
        return c.json({ status: "ready", processing: processing() }, 200);
      }
      return problem(c, {
        type: problemType(why.type),
        title: "Service Unavailable",
        status: 503,
        detail: why.detail,
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
