import assert from "node:assert/strict";
import {
  StoreOpenError,
  StoreUnavailableError,
} from "../../lib/orders/errors.ts";
import { SCHEMA_VERSION, SqliteStore } from "../../lib/store/sqlite.ts";
import { DatabaseSync } from "node:sqlite";
import { storeContract } from "./contract.ts";

async function tempDatabase(): Promise<
  { path: string; cleanup: () => Promise<void> }
> {
  const directory = await Deno.makeTempDir({ prefix: "order-service-sqlite-" });
  return {
    path: `${directory}/orders.db`,
    cleanup: () => Deno.remove(directory, { recursive: true }),
  };
}

storeContract("sqlite", async () => {
  const { path, cleanup } = await tempDatabase();
  const store = new SqliteStore(path);
  return {
    store,
    coordination: store.coordination,
    control: store.control,
    webhooks: store.webhooks,
    dispose: async () => {
      await store.close();
      await cleanup();
    },
  };
});

const order = { customer_id: "c_1", restaurant_id: "r_1", items: ["soup"] };

Deno.test("SqliteStore keeps acknowledged orders, timelines and idempotency keys across a reopen", async () => {
  const { path, cleanup } = await tempDatabase();
  try {
    const first = new SqliteStore(path);
    const { order: created } = await first.create(order, {
      idempotencyKey: "key-1",
    });
    await first.transition(created.id, {
      action: "start",
      from: ["pending"],
      to: "processing",
      incrementAttempts: true,
    });
    await first.close();
    const second = new SqliteStore(path);
    const reopened = await second.get(created.id);
    assert.equal(reopened?.status, "processing");
    assert.equal(reopened?.attempts, 1);
    assert.equal(reopened?.timeline.length, 2);
    const replay = await second.create(order, { idempotencyKey: "key-1" });
    assert.equal(replay.created, false);
    assert.equal(replay.order.id, created.id);
    await second.close();
  } finally {
    await cleanup();
  }
});

Deno.test("SqliteStore records its schema version and refuses a newer one", async () => {
  const { path, cleanup } = await tempDatabase();
  try {
    await new SqliteStore(path).close();
    const db = new DatabaseSync(path);
    assert.deepEqual({ ...db.prepare("PRAGMA user_version").get() }, {
      user_version: SCHEMA_VERSION,
    });
    db.exec(`PRAGMA user_version = ${SCHEMA_VERSION + 1}`);
    db.close();
    assert.throws(() => new SqliteStore(path), (error) => {
      assert.ok(error instanceof StoreOpenError);
      assert.match(error.message, /newer/);
      return true;
    });
  } finally {
    await cleanup();
  }
});

Deno.test("a file of schema version 1 (before the customer and restaurant indexes) is migrated on open, its orders kept, and its lists use the new indexes", async () => {
  const { path, cleanup } = await tempDatabase();
  try {
    // Version 1 as the release before this one wrote it.
    const old = new DatabaseSync(path);
    old.exec(`CREATE TABLE orders (
      id TEXT PRIMARY KEY, customer_id TEXT NOT NULL,
      restaurant_id TEXT NOT NULL, items TEXT NOT NULL, status TEXT NOT NULL,
      created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
      attempts INTEGER NOT NULL, failure_reason TEXT,
      cancel_requested INTEGER NOT NULL, timeline TEXT NOT NULL,
      idempotency_key TEXT UNIQUE) WITHOUT ROWID`);
    old.exec("CREATE INDEX orders_by_status ON orders (status, id)");
    old.exec(`INSERT INTO orders VALUES ('ORD-01JD0000AB0CCCCCCCCCCCCCCC',
      'c_old', 'r_old', '["soup"]', 'completed', 1, 2, 1, NULL, 0,
      '[{"at":1,"type":"status","status":"pending"}]', NULL)`);
    old.exec("PRAGMA user_version = 1");
    old.close();
    const store = new SqliteStore(path);
    try {
      const page = await store.list({ limit: 10, customerId: "c_old" });
      assert.deepEqual(page.orders.map((order) => order.restaurant_id), [
        "r_old",
      ]);
    } finally {
      await store.close();
    }
    const db = new DatabaseSync(path);
    try {
      assert.deepEqual({ ...db.prepare("PRAGMA user_version").get() }, {
        user_version: SCHEMA_VERSION,
      });
      const plan = (sql: string) =>
        (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all() as Array<
          { detail: string }
        >).map((row) => row.detail).join("; ");
      assert.match(
        plan(
          "SELECT * FROM orders WHERE id > '' AND customer_id = 'c' ORDER BY id LIMIT 5",
        ),
        /orders_by_customer/,
      );
      assert.match(
        plan(
          "SELECT * FROM orders WHERE id > '' AND restaurant_id = 'r' ORDER BY id LIMIT 5",
        ),
        /orders_by_restaurant/,
      );
    } finally {
      db.close();
    }
  } finally {
    await cleanup();
  }
});

Deno.test("SqliteStore refuses a bad path and a file that is not a database", async () => {
  assert.throws(
    () => new SqliteStore("/nonexistent-dir/orders.db"),
    StoreOpenError,
  );
  const { path, cleanup } = await tempDatabase();
  try {
    await Deno.writeTextFile(path, "not a database ".repeat(200));
    assert.throws(() => new SqliteStore(path), (error) => {
      assert.ok(error instanceof StoreOpenError);
      assert.match(error.message, /not a database/);
      return true;
    });
  } finally {
    await cleanup();
  }
});

Deno.test("a full disk fails the writes of that batch with StoreUnavailableError, and the store goes on", async () => {
  const { path, cleanup } = await tempDatabase();
  try {
    // The empty schema takes 12 pages; a few orders fill the rest.
    const store = new SqliteStore(path, { maxPageCount: 16 });
    const big = {
      ...order,
      items: Array.from({ length: 100 }, () => "x".repeat(200)),
    };
    let failure: unknown;
    const acknowledged: string[] = [];
    for (let index = 0; index < 200 && !failure; index++) {
      try {
        acknowledged.push((await store.create(big)).order.id);
      } catch (error) {
        failure = error;
      }
    }
    assert.ok(failure instanceof StoreUnavailableError, String(failure));
    // Everything acknowledged before is intact; reads still work.
    for (const id of acknowledged) assert.equal((await store.get(id))?.id, id);
    assert.equal(
      (await store.list({ limit: 1000 })).orders.length,
      acknowledged.length,
    );
    await store.close();
  } finally {
    await cleanup();
  }
});

Deno.test("SqliteStore commits concurrent writes together (group commit) and answers each", async () => {
  const { path, cleanup } = await tempDatabase();
  try {
    const store = new SqliteStore(path);
    const results = await Promise.all(
      Array.from({ length: 300 }, () => store.create(order)),
    );
    assert.equal(new Set(results.map((result) => result.order.id)).size, 300);
    assert.ok(
      store.commitCount <= 3,
      `${store.commitCount} commits for 300 writes`,
    );
    await store.close();
    const reopened = new SqliteStore(path);
    assert.equal((await reopened.list({ limit: 1000 })).orders.length, 300);
    await reopened.close();
  } finally {
    await cleanup();
  }
});

Deno.test("POST /orders answers 503 without acknowledging when the SQLite write fails, and the service keeps running", async () => {
  const { path, cleanup } = await tempDatabase();
  const { testSystem, drainSystem } = await import("../helpers.ts");
  const system = testSystem({
    store: new SqliteStore(path, { maxPageCount: 16 }),
    queueCapacity: 10_000,
  });
  try {
    const big = JSON.stringify({
      ...order,
      items: Array.from({ length: 100 }, () => "x".repeat(200)),
    });
    const statuses: number[] = [];
    let problemType = "";
    while (!statuses.includes(503) && statuses.length < 200) {
      const response = await system.app.request("/orders", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: big,
      });
      statuses.push(response.status);
      const body = await response.json();
      if (response.status === 503) problemType = body.type;
    }
    assert.equal(statuses.at(-1), 503);
    assert.match(problemType, /store-unavailable/);
    const acknowledged = statuses.filter((status) => status === 201).length;
    assert.equal(
      (await system.store.list({ limit: 1000 })).orders.length,
      acknowledged,
    );
    const health = await system.app.request("/health");
    assert.equal(health.status, 200);
    await health.body?.cancel();
  } finally {
    await drainSystem(system);
    await system.store.close();
    await cleanup();
  }
});

Deno.test("after a restart, what the previous process left is unclaimed: rescue() returns its processing orders to pending, noting the interruption, and claimPending() takes the pending ones oldest first", async () => {
  const { path, cleanup } = await tempDatabase();
  try {
    const first = new SqliteStore(path);
    const running = (await first.create(order)).order;
    const waiting = (await first.create(order)).order;
    const done = (await first.create(order)).order;
    await first.transition(running.id, {
      action: "start",
      from: ["pending"],
      to: "processing",
      incrementAttempts: true,
    });
    await first.transition(done.id, {
      action: "cancel",
      from: ["pending"],
      to: "cancelled",
    });
    await first.close(); // as a crash leaves it: nothing handed back

    const second = new SqliteStore(path);
    try {
      assert.equal(await second.coordination.rescue(), 1);
      const rescued = await second.get(running.id);
      assert.equal(rescued?.status, "pending");
      assert.equal(
        rescued?.attempts,
        1,
        "the interrupted attempt stays counted",
      );
      assert.deepEqual(
        rescued?.timeline.slice(-2).map((entry) => entry.type),
        ["interrupted", "status"],
      );
      const fresh = (await second.create(order)).order;
      assert.deepEqual(await second.coordination.claimPending(10), [
        running.id,
        waiting.id,
      ]);
      assert.deepEqual(await second.coordination.claimPending(10), []);
      assert.equal(
        await second.coordination.rescue(),
        0,
        "orders this process holds are never rescued",
      );
      assert.equal((await second.get(fresh.id))?.status, "pending");
    } finally {
      await second.close();
    }
  } finally {
    await cleanup();
  }
});

Deno.test("isolates sharing one file (PARALLEL): each makes ids it owns, reads every order, and rescues and claims only the orders it owns", async () => {
  const { path, cleanup } = await tempDatabase();
  try {
    // Left by one process: ids without a shard, owned by the shard their
    // first random character falls on.
    const before = new SqliteStore(path);
    const left = [];
    for (let index = 0; index < 40; index++) {
      left.push((await before.create(order)).order);
    }
    for (const each of left.slice(0, 20)) {
      await before.transition(each.id, {
        action: "start",
        from: ["pending"],
        to: "processing",
        incrementAttempts: true,
      });
    }
    await before.close();
    const isolates = [0, 1].map((index) =>
      new SqliteStore(path, { shard: { index, count: 2 } })
    );
    try {
      const owner = (id: string) =>
        "0123456789ABCDEFGHJKMNPQRSTVWXYZ".indexOf(id[14]!) % 2;
      const rescued = [];
      const claimed = [];
      for (const [index, isolate] of isolates.entries()) {
        rescued.push(await isolate.coordination.rescue());
        claimed.push(await isolate.coordination.claimPending(100));
        assert.ok(claimed[index]!.every((id) => owner(id) === index));
      }
      assert.equal(rescued[0]! + rescued[1]!, 20, "each processing order once");
      assert.deepEqual(
        [...claimed[0]!, ...claimed[1]!].sort(),
        left.map((each) => each.id).sort(),
        "every order left is claimed by exactly one isolate",
      );
      // New orders: marked with their maker, read by both, claimed by none
      // of the scans (the maker claimed them at creation).
      const made = await Promise.all(
        isolates.map(async (isolate) => (await isolate.create(order)).order),
      );
      assert.deepEqual(made.map((each) => owner(each.id)), [0, 1]);
      for (const isolate of isolates) {
        for (const each of made) {
          assert.equal((await isolate.get(each.id))?.id, each.id);
        }
        assert.deepEqual(await isolate.coordination.claimPending(100), []);
      }
    } finally {
      for (const isolate of isolates) await isolate.close();
    }
  } finally {
    await cleanup();
  }
});

Deno.test("isolates sharing one file (PARALLEL): a write that finds the lock held by another connection waits without stopping the event loop, then commits", async () => {
  const { path, cleanup } = await tempDatabase();
  const store = new SqliteStore(path, { shard: { index: 0, count: 2 } });
  const other = new DatabaseSync(path);
  try {
    other.exec("BEGIN IMMEDIATE"); // as another isolate's batch, mid-commit
    let settled = false;
    const created = store.create(order).then((result) => {
      settled = true;
      return result;
    });
    // SQLite's busy handler would have held this thread until the lock
    // went; a timer firing on time shows the event loop kept turning.
    const timerAt = performance.now();
    await new Promise((resolve) => setTimeout(resolve, 50));
    const late = performance.now() - timerAt - 50;
    assert.ok(late < 40, `the timer ran ${late.toFixed(0)} ms late`);
    await new Promise((resolve) => setTimeout(resolve, 150));
    assert.equal(settled, false, "no commit while the lock is held");
    other.exec("COMMIT");
    const { order: made } = await created;
    assert.equal((await store.get(made.id))?.id, made.id);
    const row = other.prepare("SELECT id FROM orders WHERE id = ?").get(
      made.id,
    );
    assert.deepEqual({ ...row }, { id: made.id });
  } finally {
    try {
      other.close();
    } catch { /* closed */ }
    await store.close();
    await cleanup();
  }
});

Deno.test("SqliteStore keeps control records (a pause, a bulk retry's key) across a reopen, and every store on the file sees them", async () => {
  const { path, cleanup } = await tempDatabase();
  try {
    const first = new SqliteStore(path);
    const second = new SqliteStore(path);
    await first.control.write("processing.paused", "on");
    assert.equal(await second.control.read("processing.paused"), "on");
    assert.equal(await second.control.writeIfAbsent("bulk:k", "2"), undefined);
    assert.equal(await first.control.writeIfAbsent("bulk:k", "1"), "2");
    await Promise.all([first.close(), second.close()]);
    const reopened = new SqliteStore(path);
    assert.equal(await reopened.control.read("processing.paused"), "on");
    assert.equal(await reopened.control.read("bulk:k"), "2");
    await reopened.close();
  } finally {
    await cleanup();
  }
});
