/**
 * A bound on requests being handled at once.
 *
 * @module
 */

import type { MiddlewareHandler } from "hono";
import { UNAUTHENTICATED_PATHS } from "./auth.ts";
import { problem, problemType } from "./problem.ts";

/**
 * Answers 503 (with `Retry-After`) once `max` requests are in progress, so
 * that slow clients holding requests open cannot make the service take on
 * unbounded work. Health checks are exempt: a probe must see the truth.
 */
export function inFlightLimit(max: number): MiddlewareHandler {
  if (!Number.isInteger(max) || max < 1) {
    throw new RangeError(
      `Cannot limit requests: max must be a positive integer, received "${max}"`,
    );
  }
  let inFlight = 0;
  return async (c, next) => {
    if (UNAUTHENTICATED_PATHS.has(c.req.path)) return await next();
    if (inFlight >= max) {
      return problem(c, {
        type: problemType("too-many-requests-in-flight"),
        title: "Service Unavailable",
        status: 503,
        detail:
          `The service is handling its maximum of ${max} requests; retry shortly`,
      }, { "retry-after": "1" });
    }
    inFlight++;
    try {
      await next();
    } finally {
      inFlight--;
    }
  };
}
