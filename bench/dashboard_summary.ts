/**
 * How long `GET /dashboard/api/summary` takes with many orders in the
 * store: in process (app.request, no network), after ORDERS orders went
 * through a memory store and were counted from their events. Prints one
 * JSON line: { orders, medianMs, p99Ms, bytes }.
 */

import { getLogger } from "@logtape/logtape";
import { MemoryStore } from "../lib/store/memory.ts";
import { createSystem } from "../lib/system.ts";

const orders = Number(Deno.args[0] ?? 1_000_000);
const store = new MemoryStore({ maxOrders: orders + 1 });
const system = createSystem({
  store,
  coordination: store.coordination,
  logger: getLogger(["bench"]),
  workers: 1,
  queueCapacity: 1,
  latencyScale: 0,
  failureRate: 0,
  maxAttempts: 1,
  metrics: false,
});
await system.feedStarted;
const input = { customer_id: "c_1", restaurant_id: "r_1", items: ["soup"] };
for (let index = 0; index < orders; index++) {
  // Through the store the system wraps, so each change is an event.
  const { order } = await system.store.create(input);
  if (index % 2 === 0) {
    await system.store.transition(order.id, {
      action: "cancel",
      from: ["pending"],
      to: "cancelled",
    });
  }
}
const times: number[] = [];
let bytes = 0;
for (let index = 0; index < 200; index++) {
  const startedAt = performance.now();
  const response = await system.app.request("/dashboard/api/summary");
  bytes = (await response.arrayBuffer()).byteLength;
  times.push(performance.now() - startedAt);
}
times.sort((a, b) => a - b);
const summary = await (await system.app.request("/dashboard/api/summary"))
  .json();
if (summary.counts.pending + summary.counts.cancelled !== orders) {
  throw new Error(`counts ${JSON.stringify(summary.counts)} miss orders`);
}
console.log(JSON.stringify({
  orders: store.size,
  medianMs: times[100],
  p99Ms: times[198],
  bytes,
}));
Deno.exit(0);
