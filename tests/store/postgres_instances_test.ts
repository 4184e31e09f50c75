/**
 * Several instances on one PostgreSQL schema, as stores: leases, rescue,
 * fencing, claiming without overlap, and one event feed for all. Needs the
 * PostgreSQL server (see postgres_test.ts); CI requires these tests.
 */

import assert from "node:assert/strict";
// @ts-types="npm:@types/pg@8.23.1"
import pg from "pg";
import { ClaimLostError } from "../../lib/orders/errors.ts";
import type { Order } from "../../lib/orders/order.ts";
import type { StoredChange } from "../../lib/orders/order_store.ts";
import { DashboardStats } from "../../lib/observe/dashboard_stats.ts";
import { PostgresStore } from "../../lib/store/postgres.ts";
import { EXAMPLE_ORDER, waitUntil } from "../helpers.ts";
import { CLAIMED_START } from "./contract.ts";
import {
  adminQuery,
  freshSchema,
  postgresForTests,
  TEST_DATABASE_URL,
} from "./postgres_admin.ts";

const available = await postgresForTests();

/** Runs `body` with `count` instances sharing a fresh schema. */
function withInstances(
  name: string,
  count: number,
  body: (stores: PostgresStore[], schema: string) => Promise<void>,
  leaseMs = 300,
): void {
  Deno.test({
    name,
    ignore: !available, // stated reason: no PostgreSQL server reachable here
    async fn() {
      const { schema, drop } = freshSchema();
      const stores: PostgresStore[] = [];
      try {
        for (let index = 0; index < count; index++) {
          stores.push(
            await PostgresStore.open(TEST_DATABASE_URL, {
              schema,
              poolSize: 4,
              leaseMs,
              instanceId: `test-${"abc"[index]}`,
            }),
          );
        }
        await body(stores, schema);
      } finally {
        await Promise.all(stores.map((store) => store.close()));
        await drop();
      }
    },
  });
}

const start = CLAIMED_START;

withInstances(
  "PostgreSQL instances: when one misses its heartbeats for the lease, another rescues its orders, and the presumed-dead one's fenced writes are refused",
  2,
  async ([a, b]) => {
    const running = (await a!.create(EXAMPLE_ORDER)).order;
    const queued = (await a!.create(EXAMPLE_ORDER)).order;
    await a!.transition(running.id, start);
    // Within the lease, nothing is rescued.
    assert.equal(await b!.coordination.heartbeat(), true);
    assert.equal(await b!.coordination.rescue(), 0);
    assert.deepEqual(await b!.coordination.claimPending(10), []);
    // a stops sending heartbeats (a pause, a partition) past its lease.
    await new Promise((resolve) => setTimeout(resolve, 450));
    assert.equal(await b!.coordination.heartbeat(), true);
    assert.equal(await b!.coordination.rescue(), 2);
    const rescued = await b!.get(running.id);
    assert.equal(rescued?.status, "pending");
    assert.deepEqual(
      rescued?.timeline.slice(-2).map((entry) => entry.type),
      ["interrupted", "status"],
    );
    assert.deepEqual(
      await b!.coordination.claimPending(10),
      [running.id, queued.id].sort(),
    );
    await b!.transition(running.id, start);
    // a comes back and goes on where it was: refused (River #1302).
    await assert.rejects(
      a!.transition(running.id, {
        action: "record a step of",
        from: ["processing"],
        claimed: true,
        append: [{ type: "step_finished", step: "payment", attempt: 1 }],
      }),
      ClaimLostError,
    );
    await assert.rejects(a!.transition(queued.id, start), ClaimLostError);
    assert.equal(
      await a!.coordination.heartbeat(),
      false,
      "a learns it was presumed dead",
    );
    assert.equal(
      await a!.coordination.heartbeat(),
      true,
      "and is registered again",
    );
    const final = await b!.get(running.id);
    assert.equal(
      final?.timeline.filter((entry) => entry.type === "step_finished").length,
      0,
    );
  },
);

withInstances(
  "PostgreSQL instances: claiming at once, they never take one order twice",
  3,
  async ([a, b, c]) => {
    const ids: string[] = [];
    for (let index = 0; index < 60; index++) {
      ids.push((await a!.create(EXAMPLE_ORDER)).order.id);
    }
    assert.equal(await a!.coordination.release(ids), 60);
    const claimed = await Promise.all(
      [a!, b!, c!, a!, b!, c!].map((store) =>
        store.coordination.claimPending(15)
      ),
    );
    const all = claimed.flat();
    assert.equal(all.length, 60);
    assert.equal(new Set(all).size, 60, "no order claimed twice");
    const firstBatch = await Promise.all(
      [a!, b!].map((s) => s.coordination.claimPending(5)),
    );
    assert.deepEqual(firstBatch.flat(), []);
  },
);

withInstances(
  "PostgreSQL instances: one idempotency key sent to two instances at once creates one order",
  2,
  async ([a, b]) => {
    const results = await Promise.all(
      Array.from(
        { length: 10 },
        (_, index) =>
          (index % 2 ? a! : b!).create(EXAMPLE_ORDER, {
            idempotencyKey: "same-key",
          }),
      ),
    );
    assert.equal(new Set(results.map((r) => r.order.id)).size, 1);
    assert.equal(results.filter((r) => r.created).length, 1);
  },
);

withInstances(
  "PostgreSQL instances: close() hands back what the instance held, so another takes it at once, and deregisters it",
  2,
  async ([a, b], schema) => {
    const running = (await a!.create(EXAMPLE_ORDER)).order;
    const queued = (await a!.create(EXAMPLE_ORDER)).order;
    await a!.transition(running.id, start);
    let woken = 0;
    b!.coordination.onUnclaimed(() => woken++);
    await a!.close();
    assert.deepEqual(
      await b!.coordination.claimPending(10),
      [running.id, queued.id].sort(),
      "without waiting for a's lease",
    );
    assert.equal(
      (await b!.get(running.id))?.timeline.at(-2)?.type,
      "interrupted",
    );
    await waitUntil(() => woken > 0, "b woken by NOTIFY");
    const instances = await adminQuery<{ id: string }>(
      `SELECT id FROM "${schema}".instances ORDER BY id`,
    );
    assert.deepEqual(instances.map((row) => row.id), ["test-b"]);
  },
  60_000,
);

withInstances(
  "PostgreSQL instances: every instance's feed delivers every instance's changes once, in one order, with the same ids",
  2,
  async ([a, b]) => {
    const seen: StoredChange[][] = [[], []];
    await a!.coordination.changeFeed.start(
      (change) => seen[0]!.push(change),
      100,
    );
    await b!.coordination.changeFeed.start(
      (change) => seen[1]!.push(change),
      100,
    );
    const ids: string[] = [];
    await Promise.all(Array.from({ length: 20 }, async (_, index) => {
      const store = index % 2 ? a! : b!;
      const { order } = await store.create(EXAMPLE_ORDER);
      ids.push(order.id);
      await store.transition(order.id, start);
      // A cancel on the other instance.
      await (index % 2 ? b! : a!).transition(order.id, {
        action: "cancel",
        from: ["processing"],
        set: { cancel_requested: true },
        append: [{ type: "cancel_requested" }],
      });
    }));
    // created, status (processing), cancel_requested: 3 per order.
    await waitUntil(
      () => seen[0]!.length === 60 && seen[1]!.length === 60,
      `60 events on each (a ${seen[0]!.length}, b ${seen[1]!.length})`,
    );
    const key = (change: StoredChange) =>
      `${change.id} ${change.name} ${change.order.id} ${change.instance}`;
    assert.deepEqual(seen[0]!.map(key), seen[1]!.map(key));
    assert.equal(new Set(seen[0]!.map((c) => c.id)).size, 60);
    for (const id of ids) {
      const names = seen[0]!.filter((c) => c.order.id === id).map((c) =>
        c.name
      );
      assert.deepEqual(names, ["created", "status", "cancel_requested"]);
    }
    const cancels = seen[0]!.filter((c) => c.name === "cancel_requested");
    assert.ok(cancels.every((c) => c.order.cancel_requested));
    assert.ok(
      seen[0]!.some((c) => c.instance === "test-a") &&
        seen[0]!.some((c) => c.instance === "test-b"),
    );
  },
);

withInstances(
  "PostgreSQL instances: each event carries the order as the change that made it left it, whichever instance wrote it, live and replayed; rows written before schema 3 are read as they were written",
  2,
  async ([a, b], schema) => {
    const seen: StoredChange[] = [];
    await a!.coordination.changeFeed.start((change) => seen.push(change), 0);
    // What each write answered, once per event it makes.
    const expected = new Map<string, Order[]>();
    const wrote = (order: Order, events = 1) => {
      const list = expected.get(order.id) ?? [];
      for (let index = 0; index < events; index++) list.push(order);
      expected.set(order.id, list);
    };
    // a's own writes (their events use what a remembers) and b's (a reads
    // those orders from the table).
    for (const store of [a!, b!]) {
      const { order } = await store.create({
        ...EXAMPLE_ORDER,
        items: ["pizza", "cola", "tiramisu"],
      });
      wrote(order);
      wrote(await store.transition(order.id, start));
      wrote(
        await store.transition(order.id, {
          action: "record a step of",
          from: ["processing"],
          claimed: true,
          append: [{ type: "step_finished", step: "payment", attempt: 1 }],
        }),
      );
      // Two entries in one change: two events, one order.
      wrote(
        await store.transition(order.id, {
          action: "complete",
          from: ["processing"],
          to: "completed",
          claimed: true,
          append: [{
            type: "step_finished",
            step: "courier_assignment",
            attempt: 1,
          }],
        }),
        2,
      );
    }
    await waitUntil(() => seen.length === 10, `10 events (${seen.length})`);
    for (const [id, orders] of expected) {
      const events = seen.filter((change) => change.order.id === id);
      assert.deepEqual(events.map((change) => change.order), orders);
      // One change's events in its timeline's order.
      assert.deepEqual(events.map((change) => change.name), [
        "created",
        "status",
        "step_finished",
        "step_finished",
        "status",
      ]);
    }
    assert.deepEqual(
      await a!.coordination.changeFeed.replayAfter(seen[0]!.id, 100),
      seen.slice(1),
      "replayed from the table as they were delivered",
    );
    const legacy = { ...seen[0]!.order, status: "failed" };
    await adminQuery(
      `INSERT INTO "${schema}".events (order_id, name, "order", instance)
       VALUES ($1, 'status', $2, 'test-old')`,
      [legacy.id, JSON.stringify(legacy)],
    );
    await waitUntil(() => seen.length === 11, "the old-style row");
    assert.deepEqual(seen[10]!.order, legacy);
  },
);

withInstances(
  "PostgreSQL instances: a feed whose connection is cut catches up when it returns, missing nothing",
  2,
  async ([a, b]) => {
    const seen: StoredChange[] = [];
    await a!.coordination.changeFeed.start((change) => seen.push(change), 0);
    await b!.create(EXAMPLE_ORDER);
    await waitUntil(() => seen.length === 1, "the first event");
    await adminQuery(
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
       WHERE application_name = 'order-service listener test-a'`,
    );
    for (let index = 0; index < 5; index++) await b!.create(EXAMPLE_ORDER);
    await waitUntil(
      () => seen.length === 6,
      `6 events (${seen.length})`,
      10_000,
    );
    assert.equal(new Set(seen.map((c) => c.id)).size, 6);
  },
);

withInstances(
  "PostgreSQL instances: instances() lists the live instances with what their last heartbeat said, and not a lapsed one",
  2,
  async ([a, b]) => {
    const status = {
      queue_depth: 3,
      queue_capacity: 100,
      workers_busy: 2,
      workers_total: 5,
      accepting: true,
    };
    await a!.coordination.heartbeat(status);
    const listed = await b!.coordination.instances();
    assert.deepEqual(listed.map((instance) => instance.id), [
      "test-a",
      "test-b",
    ]);
    assert.deepEqual(listed[0]!.status, status);
    assert.equal(listed[1]!.status, null, "b has not told its status yet");
    assert.ok(Math.abs(listed[0]!.heartbeat_at - Date.now()) < 5000);
    await new Promise((resolve) => setTimeout(resolve, 450)); // past the lease
    await b!.coordination.heartbeat();
    assert.deepEqual((await b!.coordination.instances()).map((i) => i.id), [
      "test-b",
    ]);
  },
);

withInstances(
  "PostgreSQL: a retried change whose first try committed unheard (same token) is applied once and answered with its result",
  1,
  async ([a]) => {
    const { order } = await a!.create(EXAMPLE_ORDER);
    const change = { ...start, token: "token-1" };
    const first = await a!.transition(order.id, change);
    // The retry a worker makes when the answer to the first was lost.
    const retry = await a!.transition(order.id, change);
    assert.deepEqual(retry, first);
    assert.equal(retry.attempts, 1);
    assert.equal(
      retry.timeline.filter((entry) => entry.type === "status").length,
      2,
    );
    // Another change (another token) is judged on its own.
    await assert.rejects(
      a!.transition(order.id, { ...start, token: "token-2" }),
      (error: Error) => error.name === "InvalidTransitionError",
    );
  },
);

withInstances(
  "PostgreSQL instances: an instance presumed dead hands back, as soon as it learns so, the orders it inserted and claimed meanwhile, so another takes them",
  2,
  async ([a, b], schema) => {
    // a misses its heartbeats past the lease; b deletes its registration.
    await new Promise((resolve) => setTimeout(resolve, 450));
    assert.equal(await b!.coordination.heartbeat(), true);
    await b!.coordination.rescue();
    // a, still unaware, inserts orders as itself (each claimed by a) and
    // claims one that was handed back.
    const inserted = [
      (await a!.create(EXAMPLE_ORDER)).order.id,
      (await a!.create(EXAMPLE_ORDER, { idempotencyKey: "k-1" })).order.id,
    ];
    const handedBack = (await b!.create(EXAMPLE_ORDER)).order.id;
    assert.equal(await b!.coordination.release([handedBack]), 1);
    assert.deepEqual(await a!.coordination.claimPending(10), [handedBack]);
    assert.equal(
      await a!.coordination.heartbeat(),
      false,
      "a learns it was presumed dead",
    );
    const held = await adminQuery<{ id: string; claimed_by: string | null }>(
      `SELECT id, claimed_by FROM "${schema}".orders WHERE id = ANY($1)`,
      [[...inserted, handedBack]],
    );
    assert.deepEqual(
      held.map((row) => row.claimed_by),
      [null, null, null],
      "nothing is left marked as a's",
    );
    assert.deepEqual(
      await b!.coordination.claimPending(10),
      [...inserted, handedBack].sort(),
    );
    // a's workers, holding the ids it queued, are refused (fencing).
    await assert.rejects(a!.transition(inserted[0]!, start), ClaimLostError);
    assert.equal(
      await a!.coordination.heartbeat(),
      true,
      "a is registered again",
    );
  },
);

withInstances(
  "PostgreSQL instances: a stale worker's refused change does not erase the newer claim of the same order",
  1,
  async ([a], schema) => {
    const { order } = await a!.create(EXAMPLE_ORDER);
    // A rescue hands the order back while a still has it queued.
    await adminQuery(
      `UPDATE "${schema}".orders
       SET claimed_by = NULL, claim_epoch = claim_epoch + 1 WHERE id = $1`,
      [order.id],
    );
    // The stale copy is refused; meanwhile a claims the order again (a
    // new epoch), before the refusal is explained by a second query.
    const stale = a!.transition(order.id, start);
    const reclaimed = await a!.coordination.claimPending(10);
    await assert.rejects(stale, ClaimLostError);
    assert.deepEqual(reclaimed, [order.id]);
    // The copy queued by the new claim still holds it.
    const started = await a!.transition(order.id, start);
    assert.equal(started.status, "processing");
  },
);

withInstances(
  "PostgreSQL instances: rescue goes on while another session holds the old global rescue lock in an open transaction",
  2,
  async ([a, b], schema) => {
    const queued = (await a!.create(EXAMPLE_ORDER)).order;
    // What a rescuer cut off mid-transaction left: the lock held, idle.
    const holder = new pg.Client({ connectionString: TEST_DATABASE_URL });
    holder.on("error", () => {});
    await holder.connect();
    try {
      await holder.query("BEGIN");
      await holder.query("SELECT pg_advisory_xact_lock(hashtext($1))", [
        `order-service:${schema}:rescue`,
      ]);
      await new Promise((resolve) => setTimeout(resolve, 450)); // a lapses
      assert.equal(await b!.coordination.heartbeat(), true);
      assert.equal(await b!.coordination.rescue(), 1);
      assert.deepEqual(await b!.coordination.claimPending(10), [queued.id]);
    } finally {
      await holder.end().catch(() => {});
    }
  },
);

withInstances(
  "PostgreSQL instances: a stale worker's change to an order rescued away from it (pending again, or started elsewhere) is refused as a lost claim, whatever the order's status now",
  1,
  async ([a], schema) => {
    const { order } = await a!.create(EXAMPLE_ORDER);
    await a!.transition(order.id, start);
    // A rescue: processing → pending, unclaimed, a new epoch.
    await adminQuery(
      `UPDATE "${schema}".orders SET status = 'pending', claimed_by = NULL,
         claim_epoch = claim_epoch + 1 WHERE id = $1`,
      [order.id],
    );
    await assert.rejects(
      a!.transition(order.id, {
        action: "record a step of",
        from: ["processing"],
        claimed: true,
        append: [{ type: "step_finished", step: "payment", attempt: 1 }],
      }),
      ClaimLostError,
    );
  },
);

withInstances(
  "PostgreSQL instances: the feed starts with counts from its own snapshot, and names the live changes those counts already hold, so a dashboard counts each order once",
  2,
  async ([a, b]) => {
    // An older transaction still running holds the snapshot's xmin back:
    // a's order commits after it began, so its event lies beyond the
    // feed's cursor though the counts see the order.
    const older = new pg.Client({ connectionString: TEST_DATABASE_URL });
    older.on("error", () => {});
    await older.connect();
    const seen: StoredChange[] = [];
    try {
      await older.query("BEGIN");
      await older.query("SELECT pg_current_xact_id()");
      const { order } = await a!.create(EXAMPLE_ORDER);
      const start = await b!.coordination.changeFeed.start(
        (change) => seen.push(change),
        100,
      );
      assert.equal(start.counts.pending, 1);
      assert.equal(start.counted.size, 1);
      await older.query("COMMIT");
      await waitUntil(() => seen.length === 1, "the created event, live");
      assert.equal(seen[0]!.order.id, order.id);
      assert.ok(start.counted.has(seen[0]!.id));
      const dashboard = new DashboardStats();
      dashboard.addExisting(start.counts, start.counted);
      dashboard.observe(seen[0]!);
      assert.equal(dashboard.figures().counts.pending, 1, "counted once");
    } finally {
      await older.end().catch(() => {});
    }
  },
);
