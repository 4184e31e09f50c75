/**
 * The pieces each route file uses to describe its operations for the
 * OpenAPI document, next to its handlers: references, response builders and
 * the parameters several routes share.
 *
 * @module
 */

/** A JSON object of the document. */
export type JsonObject = Record<string, unknown>;

/** Path → method → operation, with paths as clients call them (`/orders/{id}`). */
export type PathItems = Record<string, Record<string, JsonObject>>;

/** What a route's description depends on. */
export interface DocContext {
  /** Whether API keys are configured. */
  auth: boolean;
  /** Spread into an operation that needs a key when keys are set. */
  secured: { security: JsonObject[] };
  /** Spread into an operation that never needs a key. */
  open: { security: JsonObject[] };
}

/** A reference to a schema in `components`. */
export const ref = (name: string) => ({
  $ref: `#/components/schemas/${name}`,
});

/** JSON content of `schema`. */
export const json = (schema: JsonObject) => ({
  "application/json": { schema },
});

/** A problem+json response. */
export const problemResponse = (description: string, headers?: JsonObject) => ({
  description,
  content: { "application/problem+json": { schema: ref("Problem") } },
  ...(headers ? { headers } : {}),
});

/** The `Retry-After` header of a 503. */
export const retryAfter = {
  "Retry-After": { $ref: "#/components/headers/Retry-After" },
};

/** The `Location` header of a created or replayed order. */
export const locationHeader = {
  Location: {
    required: true,
    schema: { type: "string" },
    description: "/orders/{id}",
  },
};

/** The `{id}` path parameter. */
export const orderIdParameter = {
  name: "id",
  in: "path",
  required: true,
  schema: { type: "string" },
  description: "An order id (`ORD-…`)",
};

/** The `Last-Event-ID` header of a reconnecting event stream. */
export const lastEventIdHeader = {
  name: "Last-Event-ID",
  in: "header",
  required: false,
  schema: { type: "string" },
  description: "The id of the last event received, to resume after it",
};

/** The answers every API operation may give: 503, and 401 with keys. */
export const commonResponses = (ctx: DocContext) => ({
  "503": problemResponse(
    "The queue or store is full, too many requests are in flight, or the service is draining",
    retryAfter,
  ),
  ...unauthorized(ctx),
});

/** The 401 of a secured operation, when keys are set. */
export const unauthorized = (ctx: DocContext) =>
  ctx.auth
    ? { "401": problemResponse("Missing, malformed or wrong API key") }
    : {};

/** An event stream response. */
export const sse = (description: string) => ({
  description,
  content: {
    "text/event-stream": {
      schema: { type: "string" },
      example:
        'event: status\nid: 42\ndata: {"id":"ORD-…","status":"processing",…}\n\n',
    },
  },
});
