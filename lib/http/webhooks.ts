/**
 * The `/webhooks` resource: endpoints that receive signed messages about
 * orders, their secrets, and their deliveries.
 *
 * @module
 */

import { Hono } from "hono";
import { z } from "zod";
import {
  type AddressPolicy,
  refuseUrl,
  resolveAllowed,
  type Resolver,
} from "../webhooks/address_policy.ts";
import {
  type Delivery,
  DELIVERY_STATUSES,
  type DeliveryStatus,
  type Endpoint,
  type EndpointChanges,
  newEndpointId,
  WEBHOOK_EVENT_TYPES,
} from "../webhooks/model.ts";
import { newSecret } from "../webhooks/signature.ts";
import type { WebhookStore } from "../webhooks/webhook_store.ts";
import { fieldError, jsonBody } from "./json_body.ts";
import { HttpProblem, problemType } from "./problem.ts";
import { timeFilter } from "./schemas.ts";
import {
  commonResponses,
  type DocContext,
  json,
  type PathItems,
  problemResponse,
  ref,
} from "./openapi_parts.ts";

/** How long a rotated-away secret still signs. */
export const SECRET_OVERLAP_MS = 24 * 60 * 60 * 1000;

/** What the webhook routes need. */
export interface WebhookRoutesOptions {
  /** Absent: this store keeps no webhooks (every route answers 501). */
  store: WebhookStore | undefined;
  policy: AddressPolicy;
  resolve?: Resolver | undefined;
  /** Told when an endpoint is added or a delivery is made due. */
  wake: () => void;
  now?: () => number;
}

const urlField = z.string({ error: "url must be a string" }).max(
  2000,
  "url must be at most 2000 characters",
);
const eventsField = z.array(
  z.enum(WEBHOOK_EVENT_TYPES, {
    error: `each event must be one of ${WEBHOOK_EVENT_TYPES.join(", ")}`,
  }),
).min(1, "events must name at least one event type; leave it out for all")
  .transform((events) => [...new Set(events)]);
const descriptionField = z.string({ error: "description must be a string" })
  .max(500, "description must be at most 500 characters");

/** The body of `POST /webhooks`. */
export const newEndpointSchema = z.strictObject({
  url: urlField,
  events: eventsField.optional(),
  description: descriptionField.optional(),
});

/**
 * The body of `PATCH /webhooks/{id}`: the fields to change; `events: null`
 * is every event, `description: null` none.
 */
export const endpointChangesSchema = z.strictObject({
  url: urlField.optional(),
  events: eventsField.nullable().optional(),
  description: descriptionField.nullable().optional(),
}).refine(
  (changes) => Object.keys(changes).length > 0,
  "name at least one of url, events and description to change",
);

const time = z.iso.datetime().describe("RFC 3339 time, UTC");

/** An endpoint as the API shows it. */
export const endpointSchema = z.object({
  id: z.string(),
  url: z.string(),
  events: z.array(z.enum(WEBHOOK_EVENT_TYPES)).nullable().describe(
    "The event types it receives; null: every one",
  ),
  description: z.string().nullable(),
  created_at: time,
  enabled: z.boolean(),
  disabled_at: time.nullable(),
  disabled_reason: z.string().nullable(),
});

/** `POST /webhooks`'s answer: the endpoint and, this once, its secret. */
export const endpointWithSecretSchema = endpointSchema.extend({
  secret: z.string().describe("whsec_ and the base64 of the signing key"),
});

/** The body of `POST /webhooks/{id}/recover`. */
export const recoverSchema = z.strictObject({
  since: timeFilter("since").describe(
    "Failed messages of changes at or after this time are sent again",
  ),
});

/** `POST /webhooks/{id}/recover`'s answer. */
export const recoveredSchema = z.object({
  retried: z.number().int().describe("How many failed messages are due now"),
});

/** `POST /webhooks/{id}/rotate-secret`'s answer. */
export const rotatedSecretSchema = z.object({
  secret: z.string(),
  previous_secret_expires_at: time,
});

/** A delivery as the API shows it. */
export const deliverySchema = z.object({
  id: z.string().describe("The webhook-id: the same for every attempt"),
  type: z.enum(WEBHOOK_EVENT_TYPES),
  order_id: z.string(),
  created_at: time,
  status: z.enum(["pending", "delivered", "failed"]),
  attempts: z.number().int().nonnegative(),
  last_attempt_at: time.nullable(),
  last_status: z.number().int().nullable().describe(
    "The HTTP status of the last attempt, if it got one",
  ),
  last_error: z.string().nullable(),
  next_attempt_at: time.nullable(),
});

const iso = (ms: number | null) =>
  ms === null ? null : new Date(ms).toISOString();

/** An endpoint as the API shows it: never its secret. */
export function endpointJson(endpoint: Endpoint) {
  return {
    id: endpoint.id,
    url: endpoint.url,
    events: endpoint.events,
    description: endpoint.description,
    created_at: iso(endpoint.created_at),
    enabled: endpoint.disabled_at === null,
    disabled_at: iso(endpoint.disabled_at),
    disabled_reason: endpoint.disabled_reason,
  };
}

/** A delivery as the API shows it. */
export function deliveryJson(delivery: Delivery) {
  return {
    id: delivery.id,
    type: delivery.type,
    order_id: delivery.order_id,
    created_at: iso(delivery.created_at),
    status: delivery.status,
    attempts: delivery.attempts,
    last_attempt_at: iso(delivery.last_attempt_at),
    last_status: delivery.last_status,
    last_error: delivery.last_error,
    next_attempt_at: iso(delivery.next_attempt_at),
  };
}

function notFound(what: string, id: string): HttpProblem {
  return new HttpProblem(404, "Not Found", `No ${what} "${id}"`, {
    type: problemType(`${what.replace(/ /g, "-")}-not-found`),
  });
}

/** Creates the `/webhooks` routes. */
export function webhookRoutes(options: WebhookRoutesOptions) {
  const now = options.now ?? Date.now;
  const storeOf = (): WebhookStore => {
    if (options.store) return options.store;
    throw new HttpProblem(
      501,
      "Not Implemented",
      "This store keeps no webhooks",
      { type: problemType("webhooks-unavailable") },
    );
  };
  // Checked now and again at every connection: a name's addresses can
  // change after registration.
  const allowedUrl = async (url: string) => {
    const refused = refuseUrl(url, options.policy) ??
      await resolveAllowed(new URL(url), options.policy, options.resolve);
    if (refused === undefined) return;
    throw new HttpProblem(
      422,
      "Unprocessable Content",
      "The webhook URL is not allowed",
      {
        type: problemType("validation-failed"),
        errors: [fieldError(["url"], refused)],
      },
    );
  };
  const endpointOf = async (id: string) => {
    const endpoint = await storeOf().endpoint(id);
    if (!endpoint) throw notFound("webhook endpoint", id);
    return endpoint;
  };
  return new Hono()
    .post(
      "/webhooks",
      jsonBody(newEndpointSchema, {}, {
        noun: "a webhook endpoint",
        fields: "url, events and description",
      }),
      async (c) => {
        const store = storeOf();
        const body = c.req.valid("json");
        await allowedUrl(body.url);
        const secret = newSecret();
        const endpoint: Endpoint = {
          id: newEndpointId(),
          url: body.url,
          events: body.events ?? null,
          description: body.description ?? null,
          created_at: now(),
          disabled_at: null,
          disabled_reason: null,
          enabled_at: null,
          secrets: [{ secret, expires_at: null }],
        };
        await store.createEndpoint(endpoint);
        options.wake();
        return c.json({ ...endpointJson(endpoint), secret }, 201, {
          location: `/webhooks/${endpoint.id}`,
        });
      },
    )
    .get(
      "/webhooks",
      async (c) => c.json((await storeOf().endpoints()).map(endpointJson), 200),
    )
    .get(
      "/webhooks/:id",
      async (c) =>
        c.json(endpointJson(await endpointOf(c.req.param("id"))), 200),
    )
    .patch(
      "/webhooks/:id",
      jsonBody(endpointChangesSchema, {}, {
        noun: "changes to a webhook endpoint",
        fields: "url, events and description",
      }),
      async (c) => {
        const id = c.req.param("id");
        const body = c.req.valid("json");
        if (body.url !== undefined) await allowedUrl(body.url);
        const changes: EndpointChanges = {};
        if (body.url !== undefined) changes.url = body.url;
        if (body.events !== undefined) changes.events = body.events;
        if (body.description !== undefined) {
          changes.description = body.description;
        }
        // Messages already recorded go to the new URL; the events apply to
        // changes from now on.
        const endpoint = await storeOf().updateEndpoint(id, changes);
        if (!endpoint) throw notFound("webhook endpoint", id);
        return c.json(endpointJson(endpoint), 200);
      },
    )
    .delete("/webhooks/:id", async (c) => {
      const id = c.req.param("id");
      if (!(await storeOf().deleteEndpoint(id))) {
        throw notFound("webhook endpoint", id);
      }
      return c.body(null, 204);
    })
    .post("/webhooks/:id/enable", async (c) => {
      const id = c.req.param("id");
      // Messages left pending while it was disabled go now; changes made
      // while it was disabled were not recorded for it.
      const endpoint = await storeOf().enable(id, now());
      if (!endpoint) throw notFound("webhook endpoint", id);
      options.wake();
      return c.json(endpointJson(endpoint), 200);
    })
    .post(
      "/webhooks/:id/recover",
      jsonBody(recoverSchema, {}, {
        noun: "a recovery",
        fields: "since",
      }),
      async (c) => {
        const endpoint = await endpointOf(c.req.param("id"));
        const { since } = c.req.valid("json");
        const retried = await storeOf().retryFailed(endpoint.id, since, now());
        options.wake();
        return c.json({ retried }, 202);
      },
    )
    .post("/webhooks/:id/rotate-secret", async (c) => {
      const endpoint = await endpointOf(c.req.param("id"));
      const at = now();
      const current = endpoint.secrets.find((s) => s.expires_at === null)!;
      const secret = newSecret();
      const expires = at + SECRET_OVERLAP_MS;
      // The old secret signs beside the new one for a day, so receivers
      // can move to the new one without missing a message.
      await storeOf().setSecrets(endpoint.id, [
        { secret, expires_at: null },
        { secret: current.secret, expires_at: expires },
      ]);
      return c.json({ secret, previous_secret_expires_at: iso(expires) }, 200);
    })
    .get("/webhooks/:id/deliveries", async (c) => {
      const endpoint = await endpointOf(c.req.param("id"));
      const raw = c.req.query("limit") ?? "50";
      if (!/^[0-9]{1,3}$/.test(raw) || Number(raw) < 1 || Number(raw) > 500) {
        throw new HttpProblem(
          400,
          "Bad Request",
          "limit must be a whole number from 1 to 500",
          {
            type: problemType("invalid-query"),
          },
        );
      }
      const status = c.req.query("status");
      if (
        status !== undefined &&
        !(DELIVERY_STATUSES as readonly string[]).includes(status)
      ) {
        throw new HttpProblem(
          400,
          "Bad Request",
          `status must be one of ${DELIVERY_STATUSES.join(", ")}`,
          { type: problemType("invalid-query") },
        );
      }
      const deliveries = await storeOf().deliveries(
        endpoint.id,
        Number(raw),
        status as DeliveryStatus | undefined,
      );
      return c.json(deliveries.map(deliveryJson), 200);
    })
    .post("/webhooks/:id/deliveries/:delivery_id/retry", async (c) => {
      const endpoint = await endpointOf(c.req.param("id"));
      const id = c.req.param("delivery_id");
      const delivery = await storeOf().retryNow(endpoint.id, id, now());
      if (!delivery) throw notFound("webhook delivery", id);
      options.wake();
      return c.json(deliveryJson(delivery), 202);
    });
}

/** The OpenAPI operations of the routes above. */
export function webhookDocs(ctx: DocContext): PathItems {
  const id = {
    name: "id",
    in: "path",
    required: true,
    schema: { type: "string", pattern: "^ep_[0-9A-Z]{26}$" },
  };
  const unavailable = problemResponse(
    "Webhooks are not available with this store yet",
  );
  const missing = problemResponse("No such endpoint");
  return {
    "/webhooks": {
      post: {
        operationId: "createWebhookEndpoint",
        tags: ["webhooks"],
        summary: "Register an endpoint",
        description:
          "Messages about orders are POSTed to `url`, signed as Standard Webhooks 1.0.0 says, for the `events` given (all when absent). The answer holds the signing secret, once. The URL must be https: (http: with WEBHOOK_ALLOW_HTTP=on) and must not be, or resolve to, a private, loopback, link-local or metadata address (unless WEBHOOK_ALLOW_PRIVATE=on).",
        ...ctx.secured,
        requestBody: {
          required: true,
          content: json(ref("NewWebhookEndpoint")),
        },
        responses: {
          "201": {
            description: "Registered; the secret is shown only here",
            content: json(ref("WebhookEndpointWithSecret")),
          },
          "422": problemResponse("A bad field, or a URL that is not allowed"),
          "501": unavailable,
          ...commonResponses(ctx),
        },
      },
      get: {
        operationId: "listWebhookEndpoints",
        tags: ["webhooks"],
        summary: "Every endpoint",
        ...ctx.secured,
        responses: {
          "200": {
            description: "The endpoints, oldest first, without secrets",
            content: json({ type: "array", items: ref("WebhookEndpoint") }),
          },
          "501": unavailable,
          ...commonResponses(ctx),
        },
      },
    },
    "/webhooks/{id}": {
      get: {
        operationId: "getWebhookEndpoint",
        tags: ["webhooks"],
        summary: "One endpoint",
        ...ctx.secured,
        parameters: [id],
        responses: {
          "200": {
            description: "The endpoint",
            content: json(ref("WebhookEndpoint")),
          },
          "404": missing,
          "501": unavailable,
          ...commonResponses(ctx),
        },
      },
      patch: {
        operationId: "updateWebhookEndpoint",
        tags: ["webhooks"],
        summary: "Change an endpoint's URL, events or description",
        description:
          "Only the fields given change; the secret stays. Messages already recorded go to the new URL; the events apply to changes from now on. `events: null` is every event type.",
        ...ctx.secured,
        parameters: [id],
        requestBody: {
          required: true,
          content: json(ref("WebhookEndpointChanges")),
        },
        responses: {
          "200": {
            description: "The endpoint as changed",
            content: json(ref("WebhookEndpoint")),
          },
          "404": missing,
          "422": problemResponse("A bad field, or a URL that is not allowed"),
          "501": unavailable,
          ...commonResponses(ctx),
        },
      },
      delete: {
        operationId: "deleteWebhookEndpoint",
        tags: ["webhooks"],
        summary: "Remove an endpoint, with its deliveries",
        ...ctx.secured,
        parameters: [id],
        responses: {
          "204": { description: "Removed" },
          "404": missing,
          "501": unavailable,
          ...commonResponses(ctx),
        },
      },
    },
    "/webhooks/{id}/enable": {
      post: {
        operationId: "enableWebhookEndpoint",
        tags: ["webhooks"],
        summary: "Enable a disabled endpoint again",
        description:
          "Its messages still pending are sent; changes made while it was disabled were not recorded for it, and its failed messages stay failed until retried one by one. The 5-day disabling window counts from now. Enabling an enabled endpoint changes nothing.",
        ...ctx.secured,
        parameters: [id],
        responses: {
          "200": {
            description: "The endpoint, enabled",
            content: json(ref("WebhookEndpoint")),
          },
          "404": missing,
          "501": unavailable,
          ...commonResponses(ctx),
        },
      },
    },
    "/webhooks/{id}/recover": {
      post: {
        operationId: "recoverWebhookEndpoint",
        tags: ["webhooks"],
        summary: "Send every failed message since a time again",
        description:
          "For a receiver back after an outage longer than the retry schedule: every message that failed, of a change at or after `since`, is due now, for one more attempt each. Pending and delivered ones are left as they are.",
        ...ctx.secured,
        parameters: [id],
        requestBody: {
          required: true,
          content: json(ref("WebhookRecover")),
        },
        responses: {
          "202": {
            description: "How many are due now",
            content: json(ref("WebhookRecovered")),
          },
          "404": missing,
          "422": problemResponse("A bad or missing since"),
          "501": unavailable,
          ...commonResponses(ctx),
        },
      },
    },
    "/webhooks/{id}/rotate-secret": {
      post: {
        operationId: "rotateWebhookSecret",
        tags: ["webhooks"],
        summary: "Issue a new signing secret",
        description:
          "For 24 hours the previous secret signs too: `webhook-signature` then carries two `v1,` entries.",
        ...ctx.secured,
        parameters: [id],
        responses: {
          "200": {
            description:
              "The new secret, and when the previous one stops signing",
            content: json(ref("RotatedWebhookSecret")),
          },
          "404": missing,
          "501": unavailable,
          ...commonResponses(ctx),
        },
      },
    },
    "/webhooks/{id}/deliveries": {
      get: {
        operationId: "listWebhookDeliveries",
        tags: ["webhooks"],
        summary: "An endpoint's recent deliveries",
        ...ctx.secured,
        parameters: [id, {
          name: "limit",
          in: "query",
          required: false,
          schema: { type: "integer", minimum: 1, maximum: 500, default: 50 },
        }, {
          name: "status",
          in: "query",
          required: false,
          description:
            "Only deliveries in this status: a failed one stays findable however many were delivered after it",
          schema: { type: "string", enum: [...DELIVERY_STATUSES] },
        }],
        responses: {
          "200": {
            description: "Newest first",
            content: json({ type: "array", items: ref("WebhookDelivery") }),
          },
          "400": problemResponse("A bad limit or status"),
          "404": missing,
          "501": unavailable,
          ...commonResponses(ctx),
        },
      },
    },
    "/webhooks/{id}/deliveries/{delivery_id}/retry": {
      post: {
        operationId: "retryWebhookDelivery",
        tags: ["webhooks"],
        summary: "Send one message again now",
        ...ctx.secured,
        parameters: [id, {
          name: "delivery_id",
          in: "path",
          required: true,
          schema: { type: "string", pattern: "^msg_[0-9A-Z]{26}$" },
        }],
        responses: {
          "202": {
            description: "Due now",
            content: json(ref("WebhookDelivery")),
          },
          "404": problemResponse("No such endpoint or delivery"),
          "501": unavailable,
          ...commonResponses(ctx),
        },
      },
    },
  };
}
