/**
 * Live order events over Server-Sent Events: one order's changes, or all.
 *
 * @module
 */

import { type Context, Hono } from "hono";
import { type SSEStreamingApi, streamSSE } from "hono/streaming";
import { OrderNotFoundError } from "../orders/errors.ts";
import type {
  OrderEvent,
  OrderEventHub,
  Subscription,
} from "../observe/events.ts";
import { isTerminal } from "../orders/order.ts";
import { toOrderJson } from "./order_json.ts";
import type { Coordination } from "../orders/coordination.ts";
import type { OrderRepository } from "../orders/order_store.ts";
import { HttpProblem, problemType } from "./problem.ts";
import {
  commonResponses,
  type DocContext,
  lastEventIdHeader,
  orderIdParameter,
  type PathItems,
  problemResponse,
  sse,
} from "./openapi_parts.ts";

/** What the event routes need. */
export interface EventRoutesOptions {
  hub: OrderEventHub;
  store: Pick<OrderRepository, "get">;
  /** A shared store's change feed replays what the hub no longer keeps. */
  coordination?: Pick<Coordination, "changeFeed"> | undefined;
  /** How often an idle stream sends a comment line (default 15 s). */
  heartbeatMs?: number | undefined;
  /** Streams open at once before new ones get 503 (default 1000). */
  maxStreams?: number | undefined;
}

const HEARTBEAT = Symbol("heartbeat");

/**
 * Events replayed at most from a shared store's table for one reconnect;
 * a client further behind gets a `reset`.
 */
const TABLE_REPLAY_LIMIT = 10_000;

/**
 * Waits for the next event, sending a heartbeat comment whenever
 * `heartbeatMs` pass without one, so proxies keep the connection open.
 */
async function nextOrHeartbeat(
  stream: SSEStreamingApi,
  pending: Promise<Awaited<ReturnType<Subscription["next"]>>>,
  heartbeatMs: number,
) {
  while (true) {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const tick = new Promise<typeof HEARTBEAT>((resolve) => {
      timer = setTimeout(() => resolve(HEARTBEAT), heartbeatMs);
    });
    const result = await Promise.race([pending, tick]);
    clearTimeout(timer);
    if (result !== HEARTBEAT) return result;
    await stream.write(": heartbeat\n\n");
  }
}

/**
 * Subscribes to the hub and answers with an event stream fed by `body`.
 * The subscription ends with the stream (client gone, body done, shutdown),
 * and a subscriber the hub drops for falling behind is disconnected at once.
 * Subscribing happens now, before `respond`, so that a caller can read state
 * after subscribing without missing a change in between.
 */
function openStream(
  hub: OrderEventHub,
  options: Omit<Parameters<OrderEventHub["subscribe"]>[0] & object, "onEnd">,
) {
  let current: SSEStreamingApi | undefined;
  const subscription = hub.subscribe({
    ...options,
    onEnd: (reason) => {
      if (reason !== "overflow") return;
      // A write may be stuck on a client that stopped reading: abort the
      // writer rather than wait for it. Hono keeps the writer private;
      // aborting it is the only way to end such a response.
      const writer = (current as unknown as
        | { writer?: WritableStreamDefaultWriter }
        | undefined)
        ?.writer;
      writer?.abort(new Error("Subscriber fell behind")).catch(() => {});
    },
  });
  return {
    subscription,
    respond: (c: Context, body: (stream: SSEStreamingApi) => Promise<void>) =>
      streamSSE(c, async (stream) => {
        current = stream;
        stream.onAbort(() => subscription.close());
        try {
          await body(stream);
        } finally {
          subscription.close();
        }
      }),
  };
}

/**
 * Writes each event of `subscription` to `stream` (with heartbeats while
 * idle) until the subscription ends or `isLast` says the stream is done.
 */
async function forwardEvents(
  stream: SSEStreamingApi,
  subscription: Subscription,
  heartbeatMs: number,
  options: {
    skip?: (event: OrderEvent) => boolean;
    isLast?: (event: OrderEvent) => boolean;
  } = {},
): Promise<void> {
  while (true) {
    const next = await nextOrHeartbeat(
      stream,
      subscription.next(),
      heartbeatMs,
    );
    if (typeof next === "string") return;
    if (options.skip?.(next)) continue;
    await stream.writeSSE({
      event: next.name,
      id: String(next.id),
      data: JSON.stringify(toOrderJson(next.order)),
    });
    if (options.isLast?.(next)) return;
  }
}

/** The `Last-Event-ID` a reconnecting client sent, when it is one of ours. */
function lastEventId(c: Context): number | undefined {
  const header = c.req.header("last-event-id");
  return header !== undefined && /^\d{1,15}$/.test(header)
    ? Number(header)
    : undefined;
}

/** Creates `GET /orders/:id/events` and `GET /events`. */
export function eventRoutes(options: EventRoutesOptions) {
  const { hub, store, coordination } = options;
  const heartbeatMs = options.heartbeatMs ?? 15_000;
  const maxStreams = options.maxStreams ?? 1000;
  const checkCapacity = () => {
    if (hub.subscriberCount >= maxStreams) {
      throw new HttpProblem(
        503,
        "Service Unavailable",
        `The service serves at most ${maxStreams} event streams at once`,
        {
          type: problemType("too-many-streams"),
          headers: { "retry-after": "5" },
        },
      );
    }
  };

  return new Hono()
    .get("/orders/:id/events", async (c) => {
      const id = c.req.param("id");
      checkCapacity();
      const afterId = lastEventId(c);
      // Subscribe before reading the order: no change can slip between.
      const { subscription, respond } = openStream(hub, {
        filter: (event) => event.order.id === id,
        afterId,
      });
      const order = await store.get(id);
      if (!order) {
        subscription.close();
        throw new OrderNotFoundError(id);
      }
      // A reconnect (EventSource sends the last id it saw) can resume from
      // the kept events; an id too old or from an earlier run gets a fresh
      // snapshot instead, which holds everything missed.
      const resuming = afterId !== undefined && subscription.replayed;
      if (
        resuming && subscription.replayedCount === 0 && isTerminal(order.status)
      ) {
        // Nothing missed and nothing more to come. 204 is what makes an
        // EventSource stop reconnecting (the SSE specification); without it
        // a client reconnects every few seconds for ever.
        subscription.close();
        return c.body(null, 204);
      }
      const isLast = (event: OrderEvent) =>
        event.name === "status" && isTerminal(event.order.status);
      return respond(c, async (stream) => {
        if (resuming) {
          await forwardEvents(stream, subscription, heartbeatMs, { isLast });
          return;
        }
        await stream.writeSSE({
          event: "order",
          id: String(hub.lastId),
          data: JSON.stringify(toOrderJson(order)),
        });
        if (isTerminal(order.status)) return;
        await forwardEvents(stream, subscription, heartbeatMs, {
          // Changes already in the snapshot were published before it was read.
          skip: (event) => event.order.timeline.length <= order.timeline.length,
          isLast,
        });
      });
    })
    .get("/events", (c) => {
      checkCapacity();
      const header = c.req.header("last-event-id");
      const afterId = lastEventId(c);
      const { subscription, respond } = openStream(hub, { afterId });
      return respond(c, async (stream) => {
        // Older than the events kept in memory: a shared store may still
        // hold them. Subscribed first, so nothing falls between the two;
        // what both carry is sent once.
        const older = afterId !== undefined && !subscription.replayed
          ? await coordination?.changeFeed?.replayAfter(
            afterId,
            TABLE_REPLAY_LIMIT,
          )
          : undefined;
        if (older) {
          const sent = new Set<number>();
          for (const change of older) {
            sent.add(change.id);
            await stream.writeSSE({
              event: change.name,
              id: String(change.id),
              data: JSON.stringify(toOrderJson(change.order)),
            });
          }
          await forwardEvents(stream, subscription, heartbeatMs, {
            skip: (event) => sent.has(event.id),
          });
          return;
        }
        if (header !== undefined && !subscription.replayed) {
          await stream.writeSSE({
            event: "reset",
            data: JSON.stringify({
              reason:
                "Last-Event-ID is older than the events kept, or unknown; continuing from now",
              next_event_id: hub.nextId,
            }),
          });
        }
        await forwardEvents(stream, subscription, heartbeatMs);
      });
    });
}

/**
 * The OpenAPI operations of the event stream routes above.
 */
export function eventsDocs(ctx: DocContext): PathItems {
  return {
    "/orders/{id}/events": {
      get: {
        operationId: "orderEvents",
        tags: ["events"],
        summary: "Follow one order (Server-Sent Events)",
        description:
          "The first event (`order`) is the current state; then one event per change (`status`, `step_finished`, `attempt_failed`, `cancel_requested`, `interrupted`, `retried`) with the order as data. Ends after a terminal status. Heartbeat comments keep idle connections open. A reconnect with `Last-Event-ID` replays the changes missed; for a finished order with nothing missed it answers 204, which makes an EventSource stop reconnecting.",
        ...ctx.secured,
        parameters: [orderIdParameter, lastEventIdHeader],
        responses: {
          "200": sse("The event stream"),
          "204": {
            description:
              "A reconnect for a finished order that missed nothing: stop reconnecting",
          },
          "404": problemResponse("No such order"),
          ...commonResponses(ctx),
        },
      },
    },
    "/events": {
      get: {
        operationId: "allEvents",
        tags: ["events"],
        summary: "Follow every order change (Server-Sent Events)",
        description:
          "Every change to every order, one event each, named after it: `created` for a new order, then `status`, `step_finished`, `attempt_failed`, `cancel_requested`, `interrupted`, `retried`; the data is the order after the change. Send `Last-Event-ID` to resume without a gap: from the last 1,000 events in memory, or, with PostgreSQL, from the events table (the last 100,000 events, up to 10,000 per reconnect); if it is older, a `reset` event says so and the stream continues from now. A client that falls too far behind is disconnected.",
        ...ctx.secured,
        parameters: [lastEventIdHeader],
        responses: { "200": sse("The event stream"), ...commonResponses(ctx) },
      },
    },
  };
}
