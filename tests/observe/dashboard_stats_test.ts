import assert from "node:assert/strict";
import {
  DashboardStats,
  THROUGHPUT_SECONDS,
} from "../../lib/observe/dashboard_stats.ts";
import { OrderEventHub } from "../../lib/observe/events.ts";
import type { Order, TimelineEntry } from "../../lib/orders/order.ts";

/** An order whose timeline is `entries`, each at the given millisecond. */
function order(
  id: string,
  entries: Array<[number, TimelineEntry["type"], string?]>,
  extra: Partial<Order> = {},
): Order {
  const timeline = entries.map(([at, type, value]): TimelineEntry => {
    if (type === "status") return { at, type, status: value as never };
    if (type === "attempt_failed") {
      return { at, type, attempt: 1, reason: value ?? "" };
    }
    if (type === "step_finished") {
      return { at, type, step: "payment", attempt: 1 };
    }
    return { at, type } as TimelineEntry;
  });
  const last = timeline.at(-1)!;
  const status = [...timeline].reverse().find((entry) =>
    entry.type === "status"
  );
  return {
    id,
    customer_id: "c",
    restaurant_id: "r",
    items: ["x"],
    status: (status as { status: Order["status"] }).status,
    created_at: timeline[0]!.at,
    updated_at: last.at,
    attempts: 1,
    failure_reason: null,
    cancel_requested: false,
    timeline,
    ...extra,
  };
}

Deno.test("DashboardStats counts by status, per second, processing times and failures from known traffic", () => {
  let now = 1_000_000_000_000; // an exact second
  const stats = new DashboardStats(() => now);
  const hub = new OrderEventHub();
  hub.addListener((event) => stats.observe(event));
  stats.addExisting({ completed: 10, pending: 2 });

  // Second 0: three orders created.
  for (const id of ["A", "B", "C"]) {
    hub.publishChange(order(id, [[now, "status", "pending"]]), "created");
  }
  // Second 1: A and B start; A completes after 200 ms.
  now += 1000;
  const start = now;
  for (const id of ["A", "B"]) {
    hub.publishChange(
      order(id, [[start - 1000, "status", "pending"], [
        start,
        "status",
        "processing",
      ]]),
      1,
    );
  }
  hub.publishChange(
    order("A", [
      [start - 1000, "status", "pending"],
      [start, "status", "processing"],
      [start + 150, "step_finished"],
      [start + 200, "status", "completed"],
    ]),
    2,
  );
  // Second 2: B fails after an attempt failed, with 800 ms of processing;
  // C is cancelled while pending.
  now += 1000;
  hub.publishChange(
    order("B", [
      [start - 1000, "status", "pending"],
      [start, "status", "processing"],
      [start + 400, "attempt_failed", "payment declined"],
      [start + 800, "status", "failed"],
    ], { failure_reason: "payment declined", attempts: 2 }),
    2,
  );
  hub.publishChange(
    order("C", [[start - 1000, "status", "pending"], [
      now,
      "status",
      "cancelled",
    ]]),
    1,
  );

  const figures = stats.figures();
  assert.deepEqual(figures.counts, {
    pending: 2, // the two that existed; A, B and C have moved on
    processing: 0,
    completed: 11,
    failed: 1,
    cancelled: 1,
  });
  const { start: first, created, finished, failed } = figures.throughput;
  assert.equal(created.length, THROUGHPUT_SECONDS);
  assert.equal(first + THROUGHPUT_SECONDS - 1, now / 1000, "ends now");
  assert.deepEqual(created.slice(-3), [3, 0, 0]);
  assert.deepEqual(finished.slice(-3), [0, 1, 2]);
  assert.deepEqual(failed.slice(-3), [0, 0, 1]);
  // Only completed orders are timed: A took 200 ms.
  assert.deepEqual(figures.processing_ms, { p50: 200, p99: 200, samples: 1 });
  assert.deepEqual(figures.recent_failures, [{
    id: "B",
    failure_reason: "payment declined",
    attempts: 2,
    attempt_reasons: ["payment declined"],
    at: start + 800,
  }]);

  // Fifteen minutes later the buckets have rolled over; counts stay.
  now += THROUGHPUT_SECONDS * 1000;
  const later = stats.figures();
  assert.ok(later.throughput.created.every((value) => value === 0));
  assert.equal(later.counts.completed, 11);
});

Deno.test("DashboardStats: a retried order counts as retried, pending again, and leaves the failures list; samples give refused per second and the queue depth", () => {
  let now = 2_000_000_000_000;
  const stats = new DashboardStats(() => now);
  const hub = new OrderEventHub();
  hub.addListener((event) => stats.observe(event));
  const failed = order("F", [
    [now - 500, "status", "pending"],
    [now - 400, "status", "processing"],
    [now - 100, "status", "failed"],
  ], { failure_reason: "payment provider unavailable" });
  hub.publishChange(failed, 1);
  assert.deepEqual(stats.figures().recent_failures.map((f) => f.id), ["F"]);

  now += 1000;
  const retried: Order = {
    ...failed,
    status: "pending",
    timeline: [
      ...failed.timeline,
      {
        at: now,
        type: "retried",
        attempt: 1,
        reason: "payment provider unavailable",
      },
      { at: now, type: "status", status: "pending" },
    ],
  };
  hub.publishChange(retried, 2);
  // The refused total is a sum of counters: the first sample is the base.
  stats.sample({ refusedTotal: 40, queueDepth: 7 });
  now += 1000;
  stats.sample({ refusedTotal: 55, queueDepth: 100 });
  now += 1000;
  // An instance with 30 refusals stopped: the sum drops, nothing is negative.
  stats.sample({ refusedTotal: 25, queueDepth: 3 });
  now += 1000;
  stats.sample({ refusedTotal: 27, queueDepth: 0 });

  const figures = stats.figures();
  assert.deepEqual(figures.recent_failures, []);
  assert.equal(figures.counts.failed, 0);
  assert.equal(figures.counts.pending, 1);
  const { retried: retries, refused, queue_depth } = figures.throughput;
  assert.deepEqual(retries.slice(-4), [1, 0, 0, 0]);
  assert.deepEqual(refused.slice(-4), [0, 15, 0, 2]);
  assert.deepEqual(queue_depth.slice(-4), [7, 100, 3, 0]);
  // Read before this second's sample: as deep as last seen, for a second
  // or two; after that, unknown (0).
  stats.sample({ refusedTotal: 27, queueDepth: 9 });
  now += 1000;
  assert.deepEqual(stats.figures().throughput.queue_depth.slice(-2), [9, 9]);
  now += 3000;
  assert.deepEqual(stats.figures().throughput.queue_depth.slice(-2), [0, 0]);
});
