/**
 * Webhooks' nouns: the event types, an endpoint, a delivery (one message
 * to one endpoint, with its attempts), and which event types an order's
 * change makes.
 *
 * @module
 */

import { monotonicFactory } from "ulid";
import type { Order, TimelineEntry } from "../orders/order.ts";

const nextUlid = monotonicFactory();

/** A new message id (`webhook-id`): ids made later sort later. */
export function newMessageId(): string {
  return `msg_${nextUlid()}`;
}

/** A new endpoint id. */
export function newEndpointId(): string {
  return `ep_${nextUlid()}`;
}

/** Every event type a webhook endpoint can receive. */
export const WEBHOOK_EVENT_TYPES = [
  "order.created",
  "order.processing",
  "order.completed",
  "order.failed",
  "order.cancelled",
  "order.attempt_failed",
] as const;

/** One event type. */
export type WebhookEventType = typeof WEBHOOK_EVENT_TYPES[number];

/** A secret that signs messages; a rotated-away one until it expires. */
export interface EndpointSecret {
  secret: string;
  /** Epoch ms after which it no longer signs; `null` for the current one. */
  expires_at: number | null;
}

/** Where messages go. */
export interface Endpoint {
  /** `ep_` and 26 characters. */
  id: string;
  url: string;
  /** The event types it receives; `null`: every one. */
  events: WebhookEventType[] | null;
  description: string | null;
  created_at: number;
  /** Set when disabled (a 410, or failing every message too long). */
  disabled_at: number | null;
  disabled_reason: string | null;
  /**
   * When it was last enabled by hand after being disabled, if it was: the
   * disabling window counts from then, not from its last success.
   */
  enabled_at: number | null;
  /** The current secret first, then a rotated one while it still signs. */
  secrets: EndpointSecret[];
}

/** What `PATCH /webhooks/{id}` may change; an absent field is kept. */
export interface EndpointChanges {
  url?: string;
  events?: WebhookEventType[] | null;
  description?: string | null;
}

/** Where a delivery can stand. */
export const DELIVERY_STATUSES = ["pending", "delivered", "failed"] as const;

/** Where a delivery stands. */
export type DeliveryStatus = typeof DELIVERY_STATUSES[number];

/** One message to one endpoint, and its attempts. */
export interface Delivery {
  /** `msg_` and 26 characters: the `webhook-id`, the same for every attempt. */
  id: string;
  endpoint_id: string;
  order_id: string;
  type: WebhookEventType;
  /** When the change happened (epoch ms): the message's `timestamp`. */
  created_at: number;
  /** The order as the change left it: the message's `data`. */
  order: Order;
  status: DeliveryStatus;
  attempts: number;
  /** Epoch ms; `null` once delivered or failed. */
  next_attempt_at: number | null;
  last_attempt_at: number | null;
  /** The HTTP status of the last attempt, if it got one. */
  last_status: number | null;
  /** Why the last attempt failed, if it did. */
  last_error: string | null;
}

/** The event types of one change: its new timeline entries, or its creation. */
export function eventTypesOf(
  created: boolean,
  added: readonly TimelineEntry[],
): WebhookEventType[] {
  if (created) return ["order.created"];
  const types: WebhookEventType[] = [];
  for (const entry of added) {
    if (entry.type === "attempt_failed") types.push("order.attempt_failed");
    else if (entry.type === "status" && entry.status !== "pending") {
      types.push(`order.${entry.status}`);
    }
  }
  return types;
}

/** Whether an endpoint that chose `events` (null: all) receives `type`. */
export function listensTo(
  events: readonly WebhookEventType[] | null,
  type: WebhookEventType,
): boolean {
  return events === null || events.includes(type);
}

/** Whether `endpoint` takes messages of `type` now. */
export function wants(endpoint: Endpoint, type: WebhookEventType): boolean {
  return endpoint.disabled_at === null && listensTo(endpoint.events, type);
}
