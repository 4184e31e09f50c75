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
  // → pending: an operator retries a failed order, with fresh attempts.
  failed: ["pending"],
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
  | { at: number; type: "interrupted"; attempt: number }
  /**
   * An operator retried the failed order: the failure it ended (its last
   * attempt and reason) stays here, and the attempts start again.
   */
  | { at: number; type: "retried"; attempt: number; reason: string };

/** What a client supplies to create an order. */
export interface NewOrder {
  customer_id: string;
  restaurant_id: string;
  items: string[];
}

/**
 * An order as the store keeps it. Times are epoch milliseconds (cheaper to
 * keep than strings); `lib/http/order_json.ts` formats them for clients.
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
    case "retried":
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
