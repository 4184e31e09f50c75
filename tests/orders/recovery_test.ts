import assert from "node:assert/strict";
import type { Step } from "../../lib/orders/order.ts";
import { lastIdAt } from "../../lib/orders/order_id.ts";
import { feedPending, requeueInterrupted } from "../../lib/orders/recovery.ts";
import type { StepRunner } from "../../lib/orders/steps.ts";
import { MemoryStore } from "../../lib/store/memory.ts";
import { drainSystem, EXAMPLE_ORDER, testSystem } from "../helpers.ts";

Deno.test("requeueInterrupted() makes processing orders pending again, noting the interruption", async () => {
  const store = new MemoryStore();
  const running = (await store.create(EXAMPLE_ORDER)).order;
  const waiting = (await store.create(EXAMPLE_ORDER)).order;
  const done = (await store.create(EXAMPLE_ORDER)).order;
  await store.transition(running.id, {
    action: "start",
    from: ["pending"],
    to: "processing",
    incrementAttempts: true,
  });
  await store.transition(done.id, {
    action: "cancel",
    from: ["pending"],
    to: "cancelled",
  });
  assert.equal(await requeueInterrupted(store), 1);
  const recovered = await store.get(running.id);
  assert.equal(recovered?.status, "pending");
  assert.equal(recovered?.attempts, 1, "the interrupted attempt stays counted");
  assert.deepEqual(recovered?.timeline.slice(-2).map((entry) => entry.type), [
    "interrupted",
    "status",
  ]);
  assert.equal((await store.get(waiting.id))?.timeline.length, 1);
  assert.equal((await store.get(done.id))?.status, "cancelled");
});

Deno.test("feedPending() processes a backlog larger than the queue completely, never past its bound", async () => {
  const store = new MemoryStore();
  for (let index = 0; index < 250; index++) await store.create(EXAMPLE_ORDER);
  const system = testSystem({ store, queueCapacity: 10, workers: 3 });
  let largestQueue = 0;
  const fed = await (async () => {
    system.pool.start();
    return await feedPending({
      store,
      requeue: async (id) => {
        const queued = await system.service.requeue(id);
        largestQueue = Math.max(largestQueue, system.queue.size);
        return queued;
      },
      until: lastIdAt(Date.now()),
      onFed: () => system.stats.recordRecovered(),
    });
  })();
  await drainSystem(system);
  assert.equal(fed, 250);
  assert.ok(largestQueue <= 10, `queue held ${largestQueue}`);
  const completed = await store.list({ status: "completed", limit: 1000 });
  assert.equal(completed.orders.length, 250);
  const summary = system.stats.summary();
  assert.equal(summary.recovered, 250);
  assert.equal(summary.abandoned, 0);
});

Deno.test("feedPending() leaves orders made after start to the requests that made them", async () => {
  const store = new MemoryStore();
  const before = (await store.create(EXAMPLE_ORDER)).order;
  const until = lastIdAt(Date.now());
  await new Promise((resolve) => setTimeout(resolve, 2));
  await store.create(EXAMPLE_ORDER);
  const fedIds: string[] = [];
  await feedPending({
    store,
    requeue: (id) => Promise.resolve(fedIds.push(id) > 0),
    until,
  });
  assert.deepEqual(fedIds, [before.id]);
});

Deno.test("a recovered order resumes after its last finished step instead of repeating it", async () => {
  const runs: Partial<Record<Step, number>> = {};
  const runStep: StepRunner = (step) => {
    runs[step] = (runs[step] ?? 0) + 1;
    return Promise.resolve();
  };
  const store = new MemoryStore();
  const { order } = await store.create(EXAMPLE_ORDER);
  // As a killed process left it: started, first step finished.
  await store.transition(order.id, {
    action: "start",
    from: ["pending"],
    to: "processing",
    incrementAttempts: true,
  });
  await store.transition(order.id, {
    action: "record",
    from: ["processing"],
    append: [{
      type: "step_finished",
      step: "restaurant_confirmation",
      attempt: 1,
    }],
  });
  await requeueInterrupted(store);
  const system = testSystem({ store, runStep });
  system.pool.start();
  await feedPending({
    store,
    requeue: (id) => system.service.requeue(id),
    until: lastIdAt(Date.now()),
  });
  await drainSystem(system);
  const final = await store.get(order.id);
  assert.equal(final?.status, "completed");
  assert.equal(final?.attempts, 2);
  assert.deepEqual(runs, { payment: 1, courier_assignment: 1 });
});
