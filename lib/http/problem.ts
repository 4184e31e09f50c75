/**
 * RFC 9457 problem details, and the one place where errors become HTTP
 * responses.
 *
 * @module
 */

import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { HTTPException } from "hono/http-exception";
import type {} from "hono/request-id"; // types c.get("requestId")
import {
  BulkRetryInProgressError,
  BulkRetryKeyConflictError,
  IdempotencyConflictError,
  InvalidTransitionError,
  OrderNotFoundError,
  QueueFullError,
  ServiceDrainingError,
  StoreFullError,
  StoreUnavailableError,
} from "../orders/errors.ts";

/** The media type of every error response. */
export const PROBLEM_CONTENT_TYPE = "application/problem+json";

/** One invalid field of a request. */
export interface FieldError {
  /** The field's path, dotted (`items.0`); empty for the body itself. */
  field: string;
  /** The field as a JSON Pointer into the body (RFC 6901). */
  pointer: string;
  /** Why the value is not accepted. */
  message: string;
}

/**
 * A problem found at the HTTP boundary (bad body, bad query, bad header).
 * Thrown by request parsing; turned into a response by {@linkcode problemFor}.
 */
export class HttpProblem extends Error {
  /** Creates the problem. */
  constructor(
    readonly status: number,
    readonly title: string,
    detail: string,
    readonly options: {
      type?: string;
      errors?: FieldError[];
      headers?: Record<string, string>;
    } = {},
  ) {
    super(detail);
    this.name = "HttpProblem";
  }
}

/** A problem type URI for a condition specific to this service. */
export function problemType(slug: string): string {
  return `urn:order-service:problem:${slug}`;
}

/**
 * A problem response for the request in `c`: `instance` is the request's
 * path, and `request_id` its `X-Request-Id`, so a client can quote it.
 */
export function problem(
  c: Context,
  fields: {
    type: string;
    title: string;
    status: number;
    detail: string;
    [extension: string]: unknown;
  },
  headers: Record<string, string> = {},
): Response {
  const requestId = c.get("requestId");
  // Built through the context, so headers middleware prepared (request id,
  // security headers) are part of the response from the start.
  return c.body(
    JSON.stringify({
      ...fields,
      instance: c.req.path,
      ...(requestId ? { request_id: requestId } : {}),
    }),
    fields.status as ContentfulStatusCode,
    { "content-type": PROBLEM_CONTENT_TYPE, ...headers },
  );
}

/**
 * Maps any error to its problem response. This is the only place where
 * domain errors meet HTTP status codes. `undefined` means an unexpected
 * error, which the caller logs and answers with 500.
 */
export function problemFor(
  error: unknown,
  c: Context,
): Response | undefined {
  const respond = (
    status: number,
    title: string,
    detail: string,
    options: {
      type?: string;
      headers?: Record<string, string>;
      extra?: Record<string, unknown>;
    } = {},
  ) =>
    problem(c, {
      type: options.type ?? "about:blank",
      title,
      status,
      detail,
      ...options.extra,
    }, options.headers);

  if (error instanceof HttpProblem) {
    return respond(error.status, error.title, error.message, {
      ...(error.options.type ? { type: error.options.type } : {}),
      ...(error.options.headers ? { headers: error.options.headers } : {}),
      ...(error.options.errors
        ? { extra: { errors: error.options.errors } }
        : {}),
    });
  }
  if (error instanceof OrderNotFoundError) {
    return respond(404, "Not Found", error.message, {
      type: problemType("order-not-found"),
    });
  }
  if (error instanceof InvalidTransitionError) {
    return respond(409, "Conflict", error.message, {
      type: problemType("invalid-transition"),
      extra: { order_id: error.orderId, order_status: error.actual },
    });
  }
  if (error instanceof QueueFullError) {
    return respond(503, "Service Unavailable", error.message, {
      type: problemType("queue-full"),
      headers: { "retry-after": String(error.retryAfterSeconds) },
    });
  }
  if (error instanceof ServiceDrainingError) {
    return respond(503, "Service Unavailable", error.message, {
      type: problemType("draining"),
      headers: { "retry-after": "5", connection: "close" },
    });
  }
  if (error instanceof StoreFullError) {
    return respond(503, "Service Unavailable", error.message, {
      type: problemType("store-full"),
      headers: { "retry-after": "5" },
    });
  }
  if (error instanceof StoreUnavailableError) {
    // Nothing was acknowledged; the client may retry (with its key).
    return respond(
      503,
      "Service Unavailable",
      "The order store could not save or read the order; nothing was changed",
      {
        type: problemType("store-unavailable"),
        headers: { "retry-after": "5" },
      },
    );
  }
  if (error instanceof IdempotencyConflictError) {
    return respond(422, "Unprocessable Content", error.message, {
      type: problemType("idempotency-key-reused"),
      extra: { order_id: error.orderId },
    });
  }
  if (error instanceof BulkRetryKeyConflictError) {
    return respond(422, "Unprocessable Content", error.message, {
      type: problemType("idempotency-key-reused"),
    });
  }
  if (error instanceof BulkRetryInProgressError) {
    return respond(409, "Conflict", error.message, {
      type: problemType("bulk-retry-in-progress"),
      headers: { "retry-after": "1" },
    });
  }
  if (error instanceof HTTPException) {
    // Middleware that builds its own answer (bearer auth) carries it here.
    if (error.res) {
      const res = error.getResponse();
      return c.body(
        res.body ?? "",
        res.status as ContentfulStatusCode,
        Object.fromEntries(res.headers),
      );
    }
    return respond(error.status, error.message || "Error", error.message);
  }
  return undefined;
}
