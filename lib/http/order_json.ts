/**
 * The order as clients see it: its JSON form, defined once by the zod
 * schema `orderSchema` (`schemas.ts`), from which the OpenAPI component is
 * generated and this type derived. `toOrderJson` builds that form and
 * `orderJsonText` writes its text directly for the hot routes; tests hold
 * both to the schema and to each other.
 *
 * @module
 */

import type { z } from "zod";
import { type Order, stampEntry, type TimelineEntry } from "../orders/order.ts";
import type { orderSchema } from "./schemas.ts";

/** The order as clients see it: snake_case, RFC 3339 times. */
export type OrderJson = z.output<typeof orderSchema>;

// Formatting a date with toISOString() was the dearest part of
// toOrderJson (a finished order has eight timestamps, a few milliseconds
// apart: ~3 µs of each GET /orders/{id} under load, CPU profile). Times of
// one minute share everything up to the seconds, so that prefix is kept
// and only seconds and milliseconds are written. (A pure function's memo,
// not a cache of responses.)
let minuteStart = Number.NaN;
let minutePrefix = "";

/** Formats epoch milliseconds as an RFC 3339 UTC timestamp, as `toISOString()` does. */
export function formatTime(epochMs: number): string {
  const offset = epochMs - minuteStart;
  if (!(offset >= 0 && offset < 60_000)) {
    // A new minute (or not an integer time of this era: left to Date).
    if (
      !Number.isInteger(epochMs) || epochMs < 0 || epochMs >= MAX_4_DIGIT_YEAR
    ) {
      return new Date(epochMs).toISOString();
    }
    minuteStart = epochMs - epochMs % 60_000;
    minutePrefix = new Date(minuteStart).toISOString().slice(0, 17);
    return formatTime(epochMs);
  }
  const seconds = Math.floor(offset / 1000);
  const millis = offset % 1000;
  return minutePrefix + (seconds < 10 ? "0" : "") + seconds +
    (millis < 10 ? ".00" : millis < 100 ? ".0" : ".") + millis + "Z";
}

// 10000-01-01T00:00:00Z: from here on toISOString() writes a signed year.
const MAX_4_DIGIT_YEAR = 253_402_300_800_000;

/** Formats an order for a response body. */
export function toOrderJson(order: Order): OrderJson {
  return {
    id: order.id,
    customer_id: order.customer_id,
    restaurant_id: order.restaurant_id,
    items: order.items,
    status: order.status,
    created_at: formatTime(order.created_at),
    updated_at: formatTime(order.updated_at),
    attempts: order.attempts,
    failure_reason: order.failure_reason,
    cancel_requested: order.cancel_requested,
    timeline: order.timeline.map(entryJson),
  };
}

/**
 * The text of `JSON.stringify(toOrderJson(order))`, written directly: no
 * intermediate objects for the order and its timeline (serialising through
 * them was the largest self time of the hot routes' response, CPU profile
 * under POST load). Strings a client supplied, and failure reasons, go
 * through `JSON.stringify`; everything else is an id, a number, a
 * timestamp or one of our own names, which need no escaping. Tested
 * against `JSON.stringify(toOrderJson(order))` over random orders.
 */
export function orderJsonText(order: Order): string {
  let text = `{"id":"${order.id}","customer_id":${
    JSON.stringify(order.customer_id)
  },"restaurant_id":${JSON.stringify(order.restaurant_id)},"items":[`;
  for (let index = 0; index < order.items.length; index++) {
    if (index > 0) text += ",";
    text += JSON.stringify(order.items[index]);
  }
  text += `],"status":"${order.status}","created_at":"${
    formatTime(order.created_at)
  }","updated_at":"${
    formatTime(order.updated_at)
  }","attempts":${order.attempts},"failure_reason":${
    order.failure_reason === null
      ? "null"
      : JSON.stringify(order.failure_reason)
  },"cancel_requested":${order.cancel_requested},"timeline":[`;
  for (let index = 0; index < order.timeline.length; index++) {
    const entry = order.timeline[index]!;
    if (index > 0) text += ",";
    text += `{"at":"${formatTime(entry.at)}","type":"${entry.type}"`;
    switch (entry.type) {
      case "status":
        text += `,"status":"${entry.status}"}`;
        break;
      case "step_finished":
        text += `,"step":"${entry.step}","attempt":${entry.attempt}}`;
        break;
      case "attempt_failed":
      case "retried":
        text += `,"attempt":${entry.attempt},"reason":${
          JSON.stringify(entry.reason)
        }}`;
        break;
      case "interrupted":
        text += `,"attempt":${entry.attempt}}`;
        break;
      case "cancel_requested":
        text += "}";
        break;
    }
  }
  return text + "]}";
}

function entryJson(entry: TimelineEntry): OrderJson["timeline"][number] {
  // stampEntry keeps the fields of the entry's own type: its JSON shape.
  return stampEntry(
    entry,
    formatTime(entry.at),
  ) as OrderJson["timeline"][number];
}
