import assert from "node:assert/strict";
import { getLogger } from "@logtape/logtape";
import { OrderProcessor } from "../../lib/orders/order_processor.ts";
import type { OrderStore, Transition } from "../../lib/orders/order_store.ts";
import { OrderStats } from "../../lib/orders/stats.ts";
import { MemoryStore } from "../../lib/store/memory.ts";
import { InvalidTransitionError } from "../../lib/orders/errors.ts";
import type { Step } from "../../lib/orders/order.ts";
import { StepFailedError, type StepRunner } from "../../lib/orders/steps.ts";
import {
  drainSystem,
  EXAMPLE_ORDER,
  refusingStore,
  testSystem,
  waitForStatus,
  waitUntil,
} from "../helpers.ts";

/** A step runner that counts runs per step and fails as told. */
function countingSteps(failFirst: Partial<Record<Step, number>> = {}) {
  const runs: Record<string, number> = {};
  const runStep: StepRunner = (step) => {
    runs[step] = (runs[step] ?? 0) + 1;
    if (runs[step]! <= (failFirst[step] ?? 0)) {
      return Promise.reject(new StepFailedError(step, `${step} declined`));
    }
    return Promise.resolve();
  };
  return { runs, runStep };
}

/** A step runner whose steps wait until their signal aborts. */
function blockingSteps() {
  const started = Promise.withResolvers<void>();
  const runStep: StepRunner = (_step, _order, signal) => {
    started.resolve();
    return new Promise((_, reject) => {
      signal.addEventListener("abort", () => reject(signal.reason), {
        once: true,
      });
    });
  };
  return { started: started.promise, runStep };
}

/** Processes one order to the end with `runStep`; returns the final order. */
async function processOne(runStep: StepRunner) {
  const system = testSystem({ runStep });
  system.pool.start();
  const { order } = await system.service.create(EXAMPLE_ORDER);
  await drainSystem(system);
  return { system, done: await system.store.get(order.id) };
}

Deno.test("a worker moves an order pending → processing → completed through every step", async () => {
  const { runs, runStep } = countingSteps();
  const { system, done } = await processOne(runStep);
  assert.equal(done?.status, "completed");
  assert.equal(done?.attempts, 1);
  assert.deepEqual(
    done?.timeline.map((entry) =>
      entry.type === "status"
        ? entry.status
        : entry.type === "step_finished"
        ? entry.step
        : entry.type
    ),
    [
      "pending",
      "processing",
      "restaurant_confirmation",
      "payment",
      "courier_assignment",
      "completed",
    ],
  );
  assert.deepEqual(runs, {
    restaurant_confirmation: 1,
    payment: 1,
    courier_assignment: 1,
  });
  const { accepted, completed, failed, cancelled, abandoned } = system.stats
    .summary();
  assert.deepEqual({ accepted, completed, failed, cancelled, abandoned }, {
    accepted: 1,
    completed: 1,
    failed: 0,
    cancelled: 0,
    abandoned: 0,
  });
});

Deno.test("a failed attempt is retried and resumes after its last finished step", async () => {
  const { runs, runStep } = countingSteps({ payment: 1 });
  const { done } = await processOne(runStep);
  assert.equal(done?.status, "completed");
  assert.equal(done?.attempts, 2);
  assert.equal(
    runs.restaurant_confirmation,
    1,
    "a finished step is not repeated",
  );
  assert.equal(runs.payment, 2);
  const failures = done?.timeline.filter((entry) =>
    entry.type === "attempt_failed"
  );
  assert.deepEqual(
    failures?.map((entry) => entry.type === "attempt_failed" && entry.reason),
    ["payment declined"],
  );
});

Deno.test("an order that fails MAX_ATTEMPTS times ends failed with its reason, and the worker goes on", async () => {
  const { runs, runStep } = countingSteps({ courier_assignment: 99 });
  const backoffs: number[] = [];
  const system = testSystem({
    runStep,
    maxAttempts: 3,
    workers: 1,
    backoffMs: (attempt) => {
      backoffs.push(attempt);
      return 0;
    },
  });
  system.pool.start();
  const first = await system.service.create(EXAMPLE_ORDER);
  const second = await system.service.create(EXAMPLE_ORDER);
  await drainSystem(system);
  const failed = await system.store.get(first.order.id);
  assert.equal(failed?.status, "failed");
  assert.equal(failed?.attempts, 3);
  assert.equal(failed?.failure_reason, "courier_assignment declined");
  assert.deepEqual(
    backoffs,
    [2, 3, 2, 3],
    "backoff before attempts 2 and 3 of each order",
  );
  assert.equal((await system.store.get(second.order.id))?.status, "failed");
  assert.equal(runs.courier_assignment, 6);
  assert.equal(system.stats.summary().failed, 2);
});

Deno.test("exponential backoff doubles per attempt, with jitter between 0.5× and 1.5×", async () => {
  const { exponentialBackoff } = await import(
    "../../lib/async/backoff.ts"
  );
  assert.equal(exponentialBackoff(100, () => 0)(2), 50);
  assert.equal(exponentialBackoff(100, () => 0.5)(3), 200);
  assert.equal(exponentialBackoff(100, () => 0.999)(4) < 600, true);
});

Deno.test("cancelling a processing order aborts its running step and ends it cancelled", async () => {
  const { started, runStep } = blockingSteps();
  const system = testSystem({ runStep });
  system.pool.start();
  const { order } = await system.service.create(EXAMPLE_ORDER);
  await started;
  const result = await system.service.cancel(order.id);
  assert.equal(result.immediate, false);
  assert.equal(result.order.cancel_requested, true);
  const cancelled = await waitForStatus(system.store, order.id, ["cancelled"]);
  assert.equal(cancelled.status, "cancelled");
  await drainSystem(system);
  assert.equal(system.stats.summary().cancelled, 1);
});

Deno.test("an order cancelled while queued is skipped by the worker", async () => {
  const { runs, runStep } = countingSteps();
  const system = testSystem({ runStep });
  const { order } = await system.service.create(EXAMPLE_ORDER);
  const result = await system.service.cancel(order.id);
  assert.equal(result.immediate, true);
  await drainSystem(system);
  assert.equal((await system.store.get(order.id))?.status, "cancelled");
  assert.deepEqual(runs, {});
  assert.deepEqual(system.stats.summary().cancelled, 1);
});

Deno.test("a cancel racing a worker has one winner, and the answer matches the outcome", async () => {
  const outcomes = { queued: 0, running: 0, tooLate: 0 };
  for (let round = 0; round < 200; round++) {
    const stepStarted = Promise.withResolvers<void>();
    const system = testSystem({
      workers: 1,
      runStep: (_step, _order, signal) => {
        stepStarted.resolve();
        signal.throwIfAborted();
        return Promise.resolve();
      },
    });
    // Every fourth round the worker starts only as the cancel is issued.
    // In the other even rounds the cancel comes while the woken worker
    // waits for its turn of the event loop; in the odd ones once the worker
    // has begun the first step and got a varying distance further.
    const workerFirst = round % 4 !== 0;
    if (workerFirst) system.pool.start();
    const { order } = await system.service.create(EXAMPLE_ORDER);
    if (round % 2 === 1) {
      await stepStarted.promise;
      for (let tick = 0; tick < (round >> 1) % 12; tick++) {
        await Promise.resolve();
      }
    }
    const cancelling = system.service.cancel(order.id);
    if (!workerFirst) system.pool.start();
    const answer = await cancelling.then(
      (result) => ({ cancelled: true, immediate: result.immediate }),
      (error) => {
        assert.ok(error instanceof InvalidTransitionError);
        return { cancelled: false, immediate: false };
      },
    );
    await drainSystem(system);
    const final = await system.store.get(order.id);
    assert.equal(
      final?.status,
      answer.cancelled ? "cancelled" : "completed",
      `round ${round}`,
    );
    if (!answer.cancelled) outcomes.tooLate++;
    else if (answer.immediate) outcomes.queued++;
    else outcomes.running++;
    const { completed, cancelled, accepted } = system.stats.summary();
    assert.equal(completed + cancelled, accepted);
  }
  // The race must really have been run from every side.
  assert.ok(
    outcomes.queued > 0 && outcomes.running > 0 && outcomes.tooLate > 0,
    JSON.stringify(outcomes),
  );
});

Deno.test("a shutdown abort leaves the running order unfinished and counted as abandoned", async () => {
  const { started, runStep } = blockingSteps();
  const system = testSystem({ runStep, workers: 1 });
  system.pool.start();
  const { order } = await system.service.create(EXAMPLE_ORDER);
  await system.service.create(EXAMPLE_ORDER);
  await started;
  await system.service.stopAccepting();
  await system.pool.abort(new Error("timeout"));
  assert.equal((await system.store.get(order.id))?.status, "processing");
  assert.equal(system.stats.summary().abandoned, 2);
});

Deno.test("a shutdown abort while a woken worker waits for its turn leaves the order pending, not started", async () => {
  const system = testSystem({ workers: 1 });
  system.pool.start();
  // The worker takes the order at once but starts on it only at the event
  // loop's next turn: the abort comes first.
  const { order } = await system.service.create(EXAMPLE_ORDER);
  await system.pool.abort(new Error("timeout"));
  assert.equal((await system.store.get(order.id))?.status, "pending");
  // Accepted and neither finished nor handed on, as a queued order would be.
  assert.equal(system.stats.summary().abandoned, 1);
});

Deno.test("a store write refused while processing is retried until the store takes it, and the order still finishes", async () => {
  const { store, control } = refusingStore();
  const gate = Promise.withResolvers<void>();
  const system = testSystem({
    store,
    storeRetryMs: () => 1,
    // The first step waits for the test, so the disk fills mid-processing.
    runStep: (step) =>
      step === "restaurant_confirmation" ? gate.promise : Promise.resolve(),
  });
  system.pool.start();
  const { order } = await system.service.create(EXAMPLE_ORDER);
  await waitForStatus(system.store, order.id, ["processing"]);
  control.refusing = true;
  gate.resolve();
  await waitUntil(() => control.refused >= 5, "the store refused 5 writes");
  assert.equal(system.storeHealth.writable, false);
  assert.equal((await system.store.get(order.id))?.status, "processing");
  control.refusing = false;
  const done = await waitForStatus(system.store, order.id, ["completed"]);
  assert.equal(
    done.timeline.filter((entry) => entry.type === "step_finished").length,
    3,
    "each step recorded once, however often its write was refused",
  );
  assert.equal(system.storeHealth.writable, true);
  await drainSystem(system);
});

Deno.test("an order whose start is refused by the store is started once the store takes writes again", async () => {
  const { store, control } = refusingStore();
  const system = testSystem({ store, storeRetryMs: () => 1 });
  const { order } = await system.service.create(EXAMPLE_ORDER);
  control.refusing = true;
  system.pool.start();
  await waitUntil(() => control.refused >= 3, "the store refused 3 writes");
  assert.equal((await system.store.get(order.id))?.status, "pending");
  control.refusing = false;
  await waitForStatus(system.store, order.id, ["completed"]);
  await drainSystem(system);
});

Deno.test("shutdown ends the wait for a refusing store, leaving the order abandoned, not failed", async () => {
  const { store, control } = refusingStore();
  const system = testSystem({ store, storeRetryMs: () => 5 });
  const { order } = await system.service.create(EXAMPLE_ORDER);
  control.refusing = true;
  system.pool.start();
  await waitUntil(() => control.refused >= 2, "the store refused 2 writes");
  await system.service.stopAccepting();
  await system.pool.abort(new Error("Shutdown timeout"));
  assert.equal((await system.store.get(order.id))?.status, "pending");
  assert.equal(system.stats.summary().abandoned, 1);
});

Deno.test("an order changed elsewhere while a worker held it (a shared store's rescue) ends that worker's part as lost, not as an unexpected failure", async () => {
  const memory = new MemoryStore();
  // What a shared store answers the stale worker's retry: another instance
  // rescued the order and finished it meanwhile.
  const store: OrderStore = new Proxy(memory, {
    get(target, name) {
      if (name === "transition") {
        return (id: string, change: Transition) =>
          change.action === "retry"
            ? Promise.reject(
              new InvalidTransitionError(id, "completed", change.action),
            )
            : target.transition(id, change);
      }
      const value = Reflect.get(target, name);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  const { order } = await memory.create(EXAMPLE_ORDER);
  const processor = new OrderProcessor({
    store,
    runStep: countingSteps({ payment: 1 }).runStep,
    stats: new OrderStats(),
    logger: getLogger(["order-service", "test"]),
    maxAttempts: 3,
    backoffMs: () => 0,
  });
  assert.equal(
    await processor.process(order.id, new AbortController().signal),
    "lost",
  );
});
