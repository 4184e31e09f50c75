import assert from "node:assert/strict";
import type { System } from "../../lib/system.ts";
import type { StepRunner } from "../../lib/orders/steps.ts";
import { drainSystem, EXAMPLE_ORDER, testSystem } from "../helpers.ts";

interface SseEvent {
  event?: string;
  id?: string;
  data?: string;
  comment?: string;
}

/** Reads server-sent events from a response body, one at a time. */
function sseReader(response: Response) {
  const reader = response.body!.pipeThrough(new TextDecoderStream())
    .getReader();
  let buffered = "";
  return {
    async next(): Promise<SseEvent | undefined> {
      while (!buffered.includes("\n\n")) {
        const { value, done } = await reader.read();
        if (done) return undefined;
        buffered += value;
      }
      const block = buffered.slice(0, buffered.indexOf("\n\n"));
      buffered = buffered.slice(buffered.indexOf("\n\n") + 2);
      const event: SseEvent = {};
      for (const line of block.split("\n")) {
        if (line.startsWith(":")) event.comment = line.slice(1).trim();
        else {
          const [field, ...rest] = line.split(": ");
          (event as Record<string, string>)[field!] = rest.join(": ");
        }
      }
      return event;
    },
    cancel: () => reader.cancel(),
  };
}

async function createOrder(system: System): Promise<string> {
  const response = await system.app.request("/orders", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(EXAMPLE_ORDER),
  });
  return (await response.json()).id;
}

/** Steps that wait until the test lets each one finish. */
function gatedSteps() {
  const gates: Array<() => void> = [];
  let arrived = Promise.withResolvers<void>();
  const runStep: StepRunner = () => {
    const gate = Promise.withResolvers<void>();
    gates.push(gate.resolve);
    arrived.resolve();
    return gate.promise;
  };
  return {
    runStep,
    async release() {
      await arrived.promise;
      arrived = Promise.withResolvers();
      gates.shift()!();
    },
  };
}

Deno.test("GET /orders/{id}/events streams the current state, each change, and ends after a terminal status", async () => {
  const steps = gatedSteps();
  const system = testSystem({ runStep: steps.runStep, workers: 1 });
  try {
    const id = await createOrder(system);
    const response = await system.app.request(`/orders/${id}/events`);
    assert.equal(response.status, 200);
    assert.match(
      response.headers.get("content-type") ?? "",
      /^text\/event-stream/,
    );
    const events = sseReader(response);
    const first = await events.next();
    assert.equal(first?.event, "order");
    assert.equal(JSON.parse(first!.data!).status, "pending");
    system.pool.start();
    for (let step = 0; step < 3; step++) await steps.release();
    const seen: Array<[string, string]> = [];
    let previousId = 0;
    while (true) {
      const event = await events.next();
      if (!event) break;
      const order = JSON.parse(event.data!);
      assert.equal(order.id, id);
      assert.ok(Number(event.id) > previousId, "event ids increase");
      previousId = Number(event.id);
      seen.push([event.event!, order.status]);
    }
    assert.deepEqual(seen, [
      ["status", "processing"],
      ["step_finished", "processing"],
      ["step_finished", "processing"],
      ["step_finished", "completed"],
      ["status", "completed"],
    ]);
  } finally {
    await drainSystem(system);
  }
});

Deno.test("GET /orders/{id}/events answers 404 problem+json for an unknown order", async () => {
  const system = testSystem();
  try {
    const response = await system.app.request(
      "/orders/ORD-00000000000000000000000000/events",
    );
    assert.equal(response.status, 404);
    assert.equal(
      response.headers.get("content-type"),
      "application/problem+json",
    );
    await response.body?.cancel();
    assert.equal(system.hub.subscriberCount, 0);
  } finally {
    await drainSystem(system);
  }
});

Deno.test("GET /events resumes after Last-Event-ID without a gap, and says so when it cannot", async () => {
  const system = testSystem();
  try {
    // A client follows the stream (events are kept while someone listens)
    // and its connection drops after the second event.
    const first = await system.app.request("/events");
    const firstEvents = sseReader(first);
    await createOrder(system);
    await createOrder(system);
    assert.equal((await firstEvents.next())?.id, "1");
    assert.equal((await firstEvents.next())?.id, "2");
    await firstEvents.cancel();
    const third = await createOrder(system);
    // Events 1–3 are the three creations; resume after the second.
    const response = await system.app.request("/events", {
      headers: { "last-event-id": "2" },
    });
    const events = sseReader(response);
    const resumed = await events.next();
    assert.equal(resumed?.id, "3");
    assert.equal(JSON.parse(resumed!.data!).id, third);
    await events.cancel();

    const stale = await system.app.request("/events", {
      headers: { "last-event-id": "999999" },
    });
    const staleEvents = sseReader(stale);
    assert.equal((await staleEvents.next())?.event, "reset");
    await staleEvents.cancel();
  } finally {
    await drainSystem(system);
  }
});

Deno.test("event streams send heartbeat comments while idle and end when the hub closes (shutdown)", async () => {
  const system = testSystem({ heartbeatMs: 20 });
  try {
    const response = await system.app.request("/events");
    const events = sseReader(response);
    assert.equal((await events.next())?.comment, "heartbeat");
    system.hub.close();
    while (await events.next()) { /* until the stream ends */ }
    assert.equal(system.hub.subscriberCount, 0);
  } finally {
    await drainSystem(system);
  }
});

Deno.test("a stream whose client stops reading is dropped; orders keep flowing", async () => {
  const system = testSystem({ queueCapacity: 5000 });
  try {
    const response = await system.app.request("/events"); // never read
    await new Promise((resolve) => setTimeout(resolve, 5));
    assert.equal(system.hub.subscriberCount, 1);
    for (let index = 0; index < 600; index++) await createOrder(system);
    assert.equal(
      system.hub.subscriberCount,
      0,
      "the slow subscriber was dropped",
    );
    await response.body?.cancel().catch(() => {});
  } finally {
    await drainSystem(system);
  }
});

Deno.test("GET /metrics exposes the order, queue, worker and HTTP metrics in Prometheus text format", async () => {
  const system = testSystem();
  try {
    system.pool.start();
    await createOrder(system);
    await drainSystem(system);
    await (await system.app.request("/orders/nope")).body?.cancel();
    const response = await system.app.request("/metrics");
    assert.equal(response.status, 200);
    assert.match(
      response.headers.get("content-type") ?? "",
      /^text\/plain; version=0\.0\.4/,
    );
    const text = await response.text();
    for (
      const line of [
        /^orders_created_total 1$/m,
        /^orders_finished_total\{status="completed"\} 1$/m,
        /^order_processing_seconds_count 1$/m,
        /^order_step_seconds_count\{step="payment"\} 1$/m,
        /^queue_depth 0$/m,
        /^queue_capacity 100$/m,
        /^workers_busy 0$/m,
        /^workers_configured 2$/m,
        /^http_requests_total\{method="POST",route="\/orders",status="201"\} 1$/m,
        /^http_requests_total\{method="GET",route="\/orders\/:id",status="404"\} 1$/m,
        /^http_request_duration_seconds_count\{method="POST",route="\/orders"\} 1$/m,
      ]
    ) assert.match(text, line);
  } finally {
    await drainSystem(system);
  }
});

Deno.test("X-Request-Id is echoed when safe, replaced when not, and quoted in problem bodies", async () => {
  const system = testSystem();
  try {
    const given = await system.app.request(
      "/orders/ORD-00000000000000000000000000",
      {
        headers: { "x-request-id": "abc-123" },
      },
    );
    assert.equal(given.headers.get("x-request-id"), "abc-123");
    assert.equal((await given.json()).request_id, "abc-123");
    const unsafe = await system.app.request("/health", {
      headers: { "x-request-id": "a b\u0007<script>" },
    });
    assert.match(unsafe.headers.get("x-request-id") ?? "", /^[0-9a-f-]{36}$/);
    await unsafe.body?.cancel();
  } finally {
    await drainSystem(system);
  }
});

Deno.test("every response carries security headers; CORS is off unless origins are configured", async () => {
  const closed = testSystem();
  const open = testSystem({ corsOrigins: ["https://ops.example.com"] });
  try {
    const response = await closed.app.request("/health", {
      headers: { origin: "https://ops.example.com" },
    });
    assert.equal(response.headers.get("x-content-type-options"), "nosniff");
    const page = await closed.app.request("/docs");
    assert.equal(page.headers.get("x-frame-options"), "DENY");
    assert.equal(page.headers.get("referrer-policy"), "no-referrer");
    assert.match(
      page.headers.get("content-security-policy") ?? "",
      /default-src 'self'/,
    );
    await page.body?.cancel();
    assert.equal(response.headers.get("access-control-allow-origin"), null);
    await response.body?.cancel();
    const allowed = await open.app.request("/health", {
      headers: { origin: "https://ops.example.com" },
    });
    assert.equal(
      allowed.headers.get("access-control-allow-origin"),
      "https://ops.example.com",
    );
    await allowed.body?.cancel();
    // Problem responses, built on another path, carry them too.
    const missing = await closed.app.request("/nowhere");
    assert.equal(missing.headers.get("x-content-type-options"), "nosniff");
    assert.match(missing.headers.get("x-request-id") ?? "", /^[0-9a-f-]{36}$/);
    await missing.body?.cancel();
    const other = await open.app.request("/health", {
      headers: { origin: "https://evil.example" },
    });
    assert.notEqual(
      other.headers.get("access-control-allow-origin"),
      "https://evil.example",
    );
    await other.body?.cancel();
  } finally {
    await drainSystem(closed);
    await drainSystem(open);
  }
});
