import assert from "node:assert/strict";
import { getLogger } from "@logtape/logtape";
import type { Step } from "../../lib/orders/order.ts";
import type { Coordination } from "../../lib/orders/order_store.ts";
import { StoreHealth } from "../../lib/orders/store_health.ts";
import { WorkClaimer } from "../../lib/orders/work_claimer.ts";
import type { StepRunner } from "../../lib/orders/steps.ts";
import { drain } from "../../lib/shutdown.ts";
import { MemoryStore } from "../../lib/store/memory.ts";
import { SqliteStore } from "../../lib/store/sqlite.ts";
import {
  drainSystem,
  EXAMPLE_ORDER,
  testSystem,
  waitForStatus,
  waitUntil,
} from "../helpers.ts";

/** A SQLite file holding what a killed process left: `prepare` writes it. */
async function leftByEarlierProcess(
  prepare: (store: SqliteStore) => Promise<void>,
): Promise<{ store: SqliteStore; cleanup: () => Promise<void> }> {
  const directory = await Deno.makeTempDir({ prefix: "order-service-claims-" });
  const path = `${directory}/orders.db`;
  const first = new SqliteStore(path);
  await prepare(first);
  await first.close();
  const store = new SqliteStore(path);
  return {
    store,
    cleanup: async () => {
      await store.close().catch(() => {});
      await Deno.remove(directory, { recursive: true });
    },
  };
}

Deno.test("a backlog larger than the queue, left by an earlier process, is processed completely and never past the queue's bound", async () => {
  const { store, cleanup } = await leftByEarlierProcess(async (first) => {
    for (let index = 0; index < 250; index++) {
      await first.create(EXAMPLE_ORDER);
    }
  });
  try {
    const system = testSystem({ store, queueCapacity: 10, workers: 3 });
    let largestQueue = 0;
    const watch = setInterval(() => {
      largestQueue = Math.max(largestQueue, system.queue.size);
    }, 0);
    system.pool.start();
    system.claimer.start();
    await waitUntil(
      () => system.stats.summary().completed === 250,
      "250 completed",
      20_000,
    );
    clearInterval(watch);
    await system.claimer.stop();
    await drainSystem(system);
    assert.ok(largestQueue <= 10, `queue held ${largestQueue}`);
    const completed = await store.list({ status: "completed", limit: 1000 });
    assert.equal(completed.orders.length, 250);
    const summary = system.stats.summary();
    assert.equal(summary.recovered, 250);
    assert.equal(summary.abandoned, 0);
  } finally {
    await cleanup();
  }
});

Deno.test("a rescued order resumes after its last finished step instead of repeating it", async () => {
  let id = "";
  const { store, cleanup } = await leftByEarlierProcess(async (first) => {
    id = (await first.create(EXAMPLE_ORDER)).order.id;
    // As a killed process left it: started, first step finished.
    await first.transition(id, {
      action: "start",
      from: ["pending"],
      to: "processing",
      incrementAttempts: true,
    });
    await first.transition(id, {
      action: "record",
      from: ["processing"],
      append: [{
        type: "step_finished",
        step: "restaurant_confirmation",
        attempt: 1,
      }],
    });
  });
  try {
    const runs: Partial<Record<Step, number>> = {};
    const runStep: StepRunner = (step) => {
      runs[step] = (runs[step] ?? 0) + 1;
      return Promise.resolve();
    };
    assert.equal(await store.coordination.rescue(), 1);
    const system = testSystem({ store, runStep });
    system.pool.start();
    system.claimer.start();
    const final = await waitForStatus(store, id, ["completed"]);
    await system.claimer.stop();
    await drainSystem(system);
    assert.equal(final.attempts, 2);
    assert.deepEqual(runs, { payment: 1, courier_assignment: 1 });
  } finally {
    await cleanup();
  }
});

Deno.test("a release wakes the claimer at once, long before its poll", async () => {
  const store = new MemoryStore();
  const system = testSystem({ store, claimPollMs: 60_000 });
  system.pool.start();
  system.claimer.start();
  try {
    // The first look finds nothing; the claimer then sleeps for its poll.
    await new Promise((resolve) => setTimeout(resolve, 20));
    const { order } = await store.create(EXAMPLE_ORDER);
    await store.coordination.release([order.id]);
    const final = await waitForStatus(store, order.id, ["completed"], 2000);
    assert.equal(final.status, "completed");
    assert.equal(system.stats.summary().recovered, 1);
  } finally {
    await system.claimer.stop();
    await drainSystem(system);
  }
});

Deno.test("a shared store's drain finishes the running order and hands the queued ones back, unstarted and unclaimed", async () => {
  const store = new MemoryStore();
  const release = Promise.withResolvers<void>();
  let started = 0;
  const system = testSystem({
    store,
    workers: 1,
    runStep: async () => {
      started++;
      await release.promise;
    },
  });
  const ids: string[] = [];
  for (let index = 0; index < 5; index++) {
    ids.push((await system.service.create(EXAMPLE_ORDER)).order.id);
  }
  system.pool.start();
  await waitUntil(() => started === 1, "the first order running");
  const drained = drain({
    ...system,
    // As a shared store's coordination would: queued orders go back.
    coordination: {
      shared: true,
      release: (ids) => system.coordination.release(ids),
    },
    server: { shutdown: () => Promise.resolve() },
    logger: getLogger(["order-service-test"]),
    timeoutMs: 5000,
  });
  await waitUntil(() => system.queue.size === 0, "the queue emptied");
  release.resolve();
  const summary = await drained;
  assert.equal(summary.handed_back, 4);
  assert.equal(summary.completed, 1);
  assert.equal(summary.abandoned, 0);
  assert.equal((await store.get(ids[0]!))?.status, "completed");
  for (const id of ids.slice(1)) {
    assert.equal((await store.get(id))?.status, "pending");
  }
  assert.deepEqual(await store.coordination.claimPending(10), ids.slice(1));
});

/** A memory store's coordination whose heartbeat and rescue wait until released. */
function stallingStore(stall: { heartbeat: boolean; rescue: boolean }) {
  const memory = new MemoryStore().coordination;
  const released = Promise.withResolvers<void>();
  let heartbeats = 0;
  const store: Coordination = new Proxy(memory, {
    get(target, name) {
      if (name === "heartbeat") {
        return async () => {
          heartbeats++;
          if (stall.heartbeat) await released.promise;
          return true;
        };
      }
      if (name === "rescue") {
        return async () => {
          if (stall.rescue) await released.promise;
          return 0;
        };
      }
      const value = Reflect.get(target, name);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return { store, release: released.resolve, heartbeats: () => heartbeats };
}

function claimerFor(coordination: Coordination, health: StoreHealth) {
  return new WorkClaimer({
    coordination,
    queue: { room: 0, enqueueClaimed: () => false },
    logger: getLogger(["order-service", "test"]),
    heartbeatMs: 20,
    pollMs: 1000,
    health,
    overdueMs: 60,
  });
}

Deno.test("WorkClaimer: a heartbeat not answered in time makes the store unready, and an answer makes it ready again", async () => {
  const { store, release } = stallingStore({ heartbeat: true, rescue: false });
  const health = new StoreHealth();
  const claimer = claimerFor(store, health);
  claimer.start();
  try {
    await waitUntil(() => health.problem !== undefined, "unready", 2000);
    assert.match(health.problem!, /cannot renew its lease/);
    release();
    await waitUntil(() => health.problem === undefined, "ready", 2000);
  } finally {
    release();
    await claimer.stop();
  }
});

Deno.test("WorkClaimer: a rescue held up (a locked table) does not hold up the heartbeats", async () => {
  const { store, release, heartbeats } = stallingStore({
    heartbeat: false,
    rescue: true,
  });
  const health = new StoreHealth();
  const claimer = claimerFor(store, health);
  claimer.start();
  try {
    await waitUntil(() => heartbeats() >= 5, "five heartbeats", 2000);
    assert.equal(health.problem, undefined);
  } finally {
    release();
    await claimer.stop();
  }
});

Deno.test("a shared store's drain counts the queued orders another instance took over as lost, not abandoned", async () => {
  const store = new MemoryStore();
  const system = testSystem({ store, workers: 1 });
  const ids: string[] = [];
  for (let index = 0; index < 3; index++) {
    ids.push((await system.service.create(EXAMPLE_ORDER)).order.id);
  }
  // Rescued away while this instance was presumed dead: no longer its own,
  // so release() does not hand it back.
  await store.coordination.release([ids[0]!]);
  const summary = await drain({
    ...system,
    // As a shared store's coordination would: queued orders go back.
    coordination: {
      shared: true,
      release: (ids) => system.coordination.release(ids),
    },
    server: { shutdown: () => Promise.resolve() },
    logger: getLogger(["order-service-test"]),
    timeoutMs: 50, // no worker runs: nothing to wait for
  });
  assert.equal(summary.handed_back, 2);
  assert.equal(summary.lost, 1);
  assert.equal(summary.abandoned, 0);
});
