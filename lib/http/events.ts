/**
 * Live order events over Server-Sent Events: one order's changes, or all.
 *
 * @module
 */

import { Hono } from "hono";
import { type SSEStreamingApi, streamSSE } from "hono/streaming";
import { OrderNotFoundError } from "../errors.ts";
import type {
  OrderEventHub,
  Subscription,
  SubscriptionEnd,
} from "../events.ts";
import { isTerminal, toOrderJson } from "../order.ts";
import type { OrderStore } from "../store/store.ts";
import { HttpProblem, problemType } from "./problem.ts";

/** What the event routes need. */
export interface EventRoutesOptions {
  hub: OrderEventHub;
  store: OrderStore;
  /** How often an idle stream sends a comment line (default 15 s). */
  heartbeatMs?: number | undefined;
  /** Streams open at once before new ones get 503 (default 1000). */
  maxStreams?: number | undefined;
}

const HEARTBEAT = Symbol("heartbeat");

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

/** Drops the connection at once when the hub drops a slow subscriber. */
function disconnectOnOverflow(stream: () => SSEStreamingApi | undefined) {
  return (reason: SubscriptionEnd) => {
    if (reason !== "overflow") return;
    // A write may be stuck on a client that stopped reading: abort the
    // writer rather than wait for it.
    // Hono keeps the writer private; aborting it is the only way to end a
    // response whose client does not read.
    const writer = (stream() as unknown as
      | { writer?: WritableStreamDefaultWriter }
      | undefined)
      ?.writer;
    writer?.abort(new Error("Subscriber fell behind")).catch(() => {});
  };
}

/** Creates `GET /orders/:id/events` and `GET /events`. */
export function eventRoutes(options: EventRoutesOptions) {
  const { hub, store } = options;
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
      let current: SSEStreamingApi | undefined;
      // Subscribe before reading the order: no change can slip between.
      const subscription = hub.subscribe({
        filter: (event) => event.order.id === id,
        onEnd: disconnectOnOverflow(() => current),
      });
      const order = await store.get(id);
      if (!order) {
        subscription.close();
        throw new OrderNotFoundError(id);
      }
      return streamSSE(c, async (stream) => {
        current = stream;
        stream.onAbort(() => subscription.close());
        try {
          await stream.writeSSE({
            event: "order",
            id: String(hub.nextId - 1),
            data: JSON.stringify(toOrderJson(order)),
          });
          if (isTerminal(order.status)) return;
          while (true) {
            const next = await nextOrHeartbeat(
              stream,
              subscription.next(),
              heartbeatMs,
            );
            if (typeof next === "string") return;
            // Changes already in the snapshot were published before it was read.
            if (next.order.timeline.length <= order.timeline.length) continue;
            await stream.writeSSE({
              event: next.name,
              id: String(next.id),
              data: JSON.stringify(toOrderJson(next.order)),
            });
            if (next.name === "status" && isTerminal(next.order.status)) return;
          }
        } finally {
          subscription.close();
        }
      });
    })
    .get("/events", (c) => {
      checkCapacity();
      const header = c.req.header("last-event-id");
      const afterId = header !== undefined && /^\d{1,15}$/.test(header)
        ? Number(header)
        : undefined;
      let current: SSEStreamingApi | undefined;
      const subscription = hub.subscribe({
        afterId,
        onEnd: disconnectOnOverflow(() => current),
      });
      return streamSSE(c, async (stream) => {
        current = stream;
        stream.onAbort(() => subscription.close());
        try {
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
          while (true) {
            const next = await nextOrHeartbeat(
              stream,
              subscription.next(),
              heartbeatMs,
            );
            if (typeof next === "string") return;
            await stream.writeSSE({
              event: next.name,
              id: String(next.id),
              data: JSON.stringify(toOrderJson(next.order)),
            });
          }
        } finally {
          subscription.close();
        }
      });
    });
}
