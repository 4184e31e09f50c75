/**
 * The order: its fields, its statuses and the transitions between them.
 *
 * @module
 */

/** Every status an order can have. */
export const ORDER_STATUSES = [
  "pending",
  "processing",
  "completed",
  "failed",
  "cancelled",
] as const;

/** The status of an order. */
export type OrderStatus = typeof ORDER_STATUSES[number];

/** A count per status, every one 0: to count orders into. */
export function zeroStatusCounts(): Record<OrderStatus, number> {
  return Object.fromEntries(
    ORDER_STATUSES.map((status) => [status, 0]),
  ) as Record<OrderStatus, number>;
}

/** Statuses after which nothing more happens to an order. */
export const TERMINAL_STATUSES: ReadonlySet<OrderStatus> = new Set([
  "completed",
  "failed",
  "cancelled",
]);

/** The processing steps, in the order they run. */
export const STEPS = [
  "restaurant_confirmation",
  "payment",
  "courier_assignment",
] as const;

/** One processing step. */
export type Step = typeof STEPS[number];

/**
 * The transitions the state machine allows. `processing → processing` is
 * absent on purpose: a retry stays in `processing` through a patch, not a
 * status change.
 */
const ALLOWED: Readonly<Record<OrderStatus, readonly OrderStatus[]>> = {
  pending: ["processing", "cancelled"],
  // → pending: recovery re-queues an order a crash interrupted.
  processing: ["completed", "failed", "cancelled", "pending"],
  completed: [],
  failed: [],
  cancelled: [],
};

/** Whether the state machine allows `from → to`. */
export function canTransition(from: OrderStatus, to: OrderStatus): boolean {
  return ALLOWED[from].includes(to);
}

/** Whether `status` is final. */
export function isTerminal(status: OrderStatus): boolean {
  return TERMINAL_STATUSES.has(status);
}

/** One entry of an order's history. Times are epoch milliseconds. */
export type TimelineEntry =
  | { at: number; type: "status"; status: OrderStatus }
  | { at: number; type: "step_finished"; step: Step; attempt: number }
  | { at: number; type: "attempt_failed"; attempt: number; reason: string }
  | { at: number; type: "cancel_requested" }
  /** A crash or kill stopped the attempt; recovery queued the order again. */
  | { at: number; type: "interrupted"; attempt: number };

/** What a client supplies to create an order. */
export interface NewOrder {
  customer_id: string;
  restaurant_id: string;
  items: string[];
}

/**
 * An order as the store keeps it. Times are epoch milliseconds (cheaper to
 * keep than strings); {@linkcode toOrderJson} formats them for clients.
 */
export interface Order extends NewOrder {
  id: string;
  status: OrderStatus;
  created_at: number;
  updated_at: number;
  attempts: number;
  failure_reason: string | null;
  cancel_requested: boolean;
  timeline: TimelineEntry[];
}

/**
 * A new order as every store first keeps it: `pending`, created and updated
 * `now`, with its one timeline entry (items copied, so that the caller's
 * array can never change a stored order).
 */
export function newPendingOrder(
  id: string,
  input: NewOrder,
  now: number,
): Order {
  return {
    id,
    customer_id: input.customer_id,
    restaurant_id: input.restaurant_id,
    items: [...input.items],
    status: "pending",
    created_at: now,
    updated_at: now,
    attempts: 0,
    failure_reason: null,
    cancel_requested: false,
    timeline: [{ at: now, type: "status", status: "pending" }],
  };
}

/** The order as clients see it: snake_case, RFC 3339 times. */
export interface OrderJson extends NewOrder {
  id: string;
  status: OrderStatus;
  created_at: string;
  updated_at: string;
  attempts: number;
  failure_reason: string | null;
  cancel_requested: boolean;
  timeline: Array<Record<string, string | number>>;
}

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

/** A timeline entry before the store stamps its time. */
export type NewTimelineEntry = TimelineEntry extends infer E
  ? E extends { at: number } ? Omit<E, "at"> : never
  : never;

/**
 * `entry` with the time `at`: a timeline entry when `at` is epoch
 * milliseconds (the store stamping a change), its JSON shape when `at` is
 * a formatted time (a response). Field by field rather than
 * `{ ...entry, at }` (object rest and spread are a generic, slower copy;
 * both callers are on the hot path, CPU profile under POST load). Keys keep
 * the order clients have always seen: at, type, then the entry's own
 * fields.
 */
export function stampEntry(entry: NewTimelineEntry, at: number): TimelineEntry;
export function stampEntry(
  entry: NewTimelineEntry,
  at: string,
): Record<string, string | number>;
export function stampEntry(
  entry: NewTimelineEntry,
  at: number | string,
): TimelineEntry | Record<string, string | number> {
  switch (entry.type) {
    case "status":
      return { at, type: entry.type, status: entry.status } as TimelineEntry;
    case "step_finished":
      return {
        at,
        type: entry.type,
        step: entry.step,
        attempt: entry.attempt,
      } as TimelineEntry;
    case "attempt_failed":
      return {
        at,
        type: entry.type,
        attempt: entry.attempt,
        reason: entry.reason,
      } as TimelineEntry;
    case "interrupted":
      return { at, type: entry.type, attempt: entry.attempt } as TimelineEntry;
    case "cancel_requested":
      return { at, type: entry.type } as TimelineEntry;
  }
}

function entryJson(entry: TimelineEntry): Record<string, string | number> {
  return stampEntry(entry, formatTime(entry.at));
}

/** The steps an order has finished, from its timeline. */
export function finishedSteps(order: Order): Set<Step> {
  const finished = new Set<Step>();
  for (const entry of order.timeline) {
    if (entry.type === "step_finished") finished.add(entry.step);
  }
  return finished;
}

/** Whether two creation requests carry the same order (for idempotency). */
export function sameNewOrder(a: NewOrder, b: NewOrder): boolean {
  return a.customer_id === b.customer_id &&
    a.restaurant_id === b.restaurant_id &&
    a.items.length === b.items.length &&
    a.items.every((item, index) => item === b.items[index]);
}
