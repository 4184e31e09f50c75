/**
 * In-process benchmarks of the HTTP application (`app.fetch`), without the
 * network: what our code costs per request, apart from Deno's HTTP server.
 */

import { getLogger } from "@logtape/logtape";
import { MemoryStore } from "../lib/store/memory.ts";
import { createSystem } from "../lib/system.ts";

const BODY =
  '{"customer_id":"c_12345","restaurant_id":"r_456","items":["veggie_burger","fries"]}';

function makeSystem(
  latencyScale: number,
  features: { metrics?: boolean; events?: boolean } = {},
) {
  const store = new MemoryStore({ maxOrders: 50_000_000 });
  const system = createSystem({
    ...features,
    store,
    coordination: store.coordination,
    logger: getLogger(["order-service-bench"]),
    workers: 5,
    queueCapacity: 10_000_000,
    latencyScale,
    failureRate: 0,
    maxAttempts: 3,
  });
  return system;
}

function postRequest(): Request {
  return new Request("http://localhost/orders", {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "content-length": String(BODY.length),
    },
    body: BODY,
  });
}

const acceptOnly = makeSystem(1); // workers not started: accept path only
Deno.bench("POST /orders (accept path only)", { group: "app" }, async () => {
  const response = await acceptOnly.app.fetch(postRequest());
  await response.text();
});

const full = makeSystem(0);
full.pool.start();
Deno.bench(
  "POST /orders (with processing, LATENCY_SCALE=0)",
  { group: "app" },
  async () => {
    const response = await full.app.fetch(postRequest());
    await response.text();
  },
);

// What order events and metrics cost: the same path with each turned off.
const noMetrics = makeSystem(0, { metrics: false });
noMetrics.pool.start();
Deno.bench(
  "POST /orders (with processing, METRICS off)",
  { group: "app" },
  async () => {
    const response = await noMetrics.app.fetch(postRequest());
    await response.text();
  },
);

const noEvents = makeSystem(0, { metrics: false, events: false });
noEvents.pool.start();
Deno.bench("POST /orders (with processing, METRICS and events off)", {
  group: "app",
}, async () => {
  const response = await noEvents.app.fetch(postRequest());
  await response.text();
});

const { order } = await acceptOnly.store.create(JSON.parse(BODY));
Deno.bench("GET /orders/{id}", { group: "app" }, async () => {
  const response = await acceptOnly.app.fetch(
    new Request(`http://localhost/orders/${order.id}`),
  );
  await response.text();
});

Deno.bench("baseline handler: read body, answer fixed JSON", {
  group: "app",
  baseline: true,
}, async () => {
  const request = postRequest();
  await request.arrayBuffer();
  const response = new Response('{"id":"ORD-1"}', {
    status: 201,
    headers: { "content-type": "application/json" },
  });
  await response.text();
});
