import assert from "node:assert/strict";
import {
  IdempotencyConflictError,
  InvalidTransitionError,
  OrderNotFoundError,
  QueueFullError,
  ServiceDrainingError,
} from "../../lib/orders/errors.ts";
import { MemoryStore } from "../../lib/store/memory.ts";
import type { OrderStore } from "../../lib/orders/order_store.ts";
import { drainSystem, EXAMPLE_ORDER, testSystem } from "../helpers.ts";

Deno.test("OrderService refuses an order at once when the queue is full, and stores nothing", async () => {
  const system = testSystem({ queueCapacity: 2 }); // workers not started
  await system.service.create(EXAMPLE_ORDER);
  await system.service.create(EXAMPLE_ORDER);
  await assert.rejects(system.service.create(EXAMPLE_ORDER), QueueFullError);
  assert.equal((await system.store.list({ limit: 10 })).orders.length, 2);
  assert.equal(system.stats.summary().accepted, 2);
  await drainSystem(system);
});

Deno.test("OrderService admits exactly the queue's capacity under concurrent creates", async () => {
  const system = testSystem({ queueCapacity: 3 });
  const results = await Promise.allSettled(
    Array.from({ length: 20 }, () => system.service.create(EXAMPLE_ORDER)),
  );
  const accepted = results.filter((result) => result.status === "fulfilled");
  const refused = results.filter((result) =>
    result.status === "rejected" && result.reason instanceof QueueFullError
  );
  assert.equal(accepted.length, 3);
  assert.equal(refused.length, 17);
  assert.equal((await system.store.list({ limit: 100 })).orders.length, 3);
  assert.equal(system.queue.size, 3);
  await drainSystem(system);
});

Deno.test("OrderService creates one order for concurrent requests with one idempotency key", async () => {
  const system = testSystem();
  const results = await Promise.all(
    Array.from(
      { length: 25 },
      () => system.service.create(EXAMPLE_ORDER, "key-1"),
    ),
  );
  assert.equal(results.filter((result) => result.created).length, 1);
  assert.equal(new Set(results.map((result) => result.order.id)).size, 1);
  assert.equal(system.queue.size, 1, "queued once");
  assert.equal(system.stats.summary().accepted, 1);
  await drainSystem(system);
});

Deno.test("OrderService replays an idempotent request even when the queue is full", async () => {
  const system = testSystem({ queueCapacity: 1 });
  const first = await system.service.create(EXAMPLE_ORDER, "key-1");
  const again = await system.service.create(EXAMPLE_ORDER, "key-1");
  assert.equal(again.created, false);
  assert.equal(again.order.id, first.order.id);
  await assert.rejects(
    system.service.create({ ...EXAMPLE_ORDER, items: ["tea"] }, "key-1"),
    IdempotencyConflictError,
  );
  await drainSystem(system);
});

Deno.test("OrderService.cancel() refuses a finished order and an unknown one", async () => {
  const system = testSystem();
  system.pool.start();
  const { order } = await system.service.create(EXAMPLE_ORDER);
  await drainSystem(system);
  await assert.rejects(system.service.cancel(order.id), InvalidTransitionError);
  await assert.rejects(system.service.cancel("ORD-NOPE"), OrderNotFoundError);
});

/** A store whose create() waits for a gate: an order caught mid-write. */
function slowCreateStore(gate: Promise<void>): OrderStore {
  const store = new MemoryStore();
  return new Proxy(store, {
    get(target, property) {
      if (property === "create") {
        return async (...args: Parameters<MemoryStore["create"]>) => {
          await gate;
          return target.create(...args);
        };
      }
      const value = Reflect.get(target, property, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

Deno.test("stopAccepting() refuses new orders but lets an order being stored reach the queue", async () => {
  const gate = Promise.withResolvers<void>();
  const system = testSystem({ store: slowCreateStore(gate.promise) });
  const inFlight = system.service.create(EXAMPLE_ORDER);
  let stopped = false;
  const stopping = system.service.stopAccepting().then(() => stopped = true);
  await assert.rejects(
    system.service.create(EXAMPLE_ORDER),
    ServiceDrainingError,
  );
  assert.equal(system.service.accepting, false);
  await new Promise((resolve) => setTimeout(resolve, 5));
  assert.equal(
    stopped,
    false,
    "the queue must stay open for the in-flight order",
  );
  gate.resolve();
  const { order } = await inFlight;
  await stopping;
  assert.equal(system.queue.closed, true);
  assert.deepEqual(system.queue.tryReceive(), { ok: true, value: order.id });
});
