/**
 * The durable store's promise, end to end: kill the process with SIGKILL in
 * the middle of processing, start it again on the same file, and every
 * acknowledged order completes, once, without repeating a finished step.
 */

import assert from "node:assert/strict";
import {
  listAllOrders,
  postOrder,
  postOrdersUntil,
  waitUntilSettled,
} from "./load.ts";
import { runToExit, startService } from "./service_process.ts";
import { DatabaseSync } from "node:sqlite";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function countWithStatus(url: string, status: string): Promise<number> {
  const response = await fetch(`${url}/orders?status=${status}&limit=1000`);
  return (await response.json()).length;
}

Deno.test("SQLite store: after SIGKILL mid-processing, a restart completes every acknowledged order exactly once", async () => {
  const directory = await Deno.makeTempDir({ prefix: "order-service-crash-" });
  const store = `sqlite:${directory}/orders.db`;
  try {
    // Load, then SIGKILL while orders are in progress. A kill can land in
    // the instant between a group commit that finished the running orders
    // and the one that starts the next (the workers move in step with the
    // commits); the file then holds none in progress and the run proves
    // nothing, so it is repeated (at most three times) until one does.
    const created: string[] = [];
    let inProgressAtKill = 0;
    for (let attempt = 1; attempt <= 3 && inProgressAtKill === 0; attempt++) {
      const first = await startService({
        STORE: store,
        LATENCY_SCALE: "0.05", // ~125 ms per order
        WORKERS: "8",
        QUEUE_CAPACITY: "1000",
      });
      // A count, not a clock: a loaded machine acknowledges fewer a second.
      const load = await postOrdersUntil(first.url, {
        concurrency: 16,
        createdCount: 200,
        maxMs: 30_000,
      });
      assert.ok(
        load.created.length >= 200,
        `only ${load.created.length} orders acknowledged`,
      );
      created.push(...load.created);
      // Kill when some orders have finished and others are mid-processing.
      const deadline = Date.now() + 20_000;
      while (
        (await countWithStatus(first.url, "completed")) < 5 ||
        (await countWithStatus(first.url, "processing")) === 0
      ) {
        assert.ok(
          Date.now() < deadline,
          "never saw orders both finished and in progress",
        );
        await sleep(10);
      }
      first.kill("SIGKILL");
      assert.equal((await first.status).signal, "SIGKILL");
      const db = new DatabaseSync(`${directory}/orders.db`);
      inProgressAtKill = (db.prepare(
        "SELECT count(*) AS n FROM orders WHERE status = 'processing'",
      ).get() as { n: number }).n;
      db.close();
    }
    assert.ok(inProgressAtKill > 0, "three kills found nothing in progress");
    const load = { created };

    const second = await startService({
      STORE: store,
      LATENCY_SCALE: "0.001",
      WORKERS: "8",
    });
    await waitUntilSettled(second.url, 60_000);
    const orders = await listAllOrders(second.url);
    const ids = orders.map((order) => order.id);
    assert.equal(new Set(ids).size, ids.length, "an order appears twice");
    assert.deepEqual(
      [...ids].sort(),
      [...load.created].sort(),
      "acknowledged orders missing, or extra ones",
    );
    let interrupted = 0;
    for (const { id } of orders) {
      const order = await (await fetch(`${second.url}/orders/${id}`)).json();
      assert.equal(order.status, "completed", id);
      const finished = order.timeline.filter((entry: { type: string }) =>
        entry.type === "step_finished"
      )
        .map((entry: { step: string }) => entry.step);
      assert.deepEqual(finished, [
        "restaurant_confirmation",
        "payment",
        "courier_assignment",
      ], `${id} repeated a step`);
      if (
        order.timeline.some((entry: { type: string }) =>
          entry.type === "interrupted"
        )
      ) interrupted++;
    }
    assert.ok(interrupted > 0, "some orders were interrupted and resumed");
    second.kill("SIGTERM");
    assert.equal((await second.status).code, 0);
    const summary = second.records.at(-1) as Record<string, number>;
    assert.ok(summary.recovered! > 0);
    assert.equal(summary.abandoned, 0);
  } finally {
    await Deno.remove(directory, { recursive: true });
  }
});

Deno.test("SQLite store: a bad path or a file that is not a database stops start-up with code 2", async () => {
  const directory = await Deno.makeTempDir({ prefix: "order-service-bad-" });
  try {
    const missing = await runToExit({
      STORE: "sqlite:/nonexistent-dir/orders.db",
    });
    assert.equal(missing.code, 2);
    assert.match(
      missing.stderr,
      /Cannot open the SQLite store "\/nonexistent-dir\/orders.db"/,
    );
    const corrupt = `${directory}/corrupt.db`;
    await Deno.writeTextFile(corrupt, "definitely not SQLite ".repeat(100));
    const notADatabase = await runToExit({ STORE: `sqlite:${corrupt}` });
    assert.equal(notADatabase.code, 2);
    assert.match(notADatabase.stderr, /not a database/);
  } finally {
    await Deno.remove(directory, { recursive: true });
  }
});

Deno.test("SQLite store: after a restart the dashboard's counts include the orders already in the file, then follow new ones", async () => {
  const directory = await Deno.makeTempDir({ prefix: "order-service-dash-" });
  const env = { STORE: `sqlite:${directory}/orders.db`, LATENCY_SCALE: "0" };
  try {
    const first = await startService(env);
    for (let index = 0; index < 5; index++) {
      const response = await postOrder(first.url);
      assert.equal(response.status, 201);
      await response.body?.cancel();
    }
    await waitUntilSettled(first.url, 10_000);
    first.kill("SIGTERM");
    assert.equal((await first.status).code, 0);

    const second = await startService(env);
    const summary = await (await fetch(`${second.url}/dashboard/api/summary`))
      .json();
    assert.equal(summary.store, "sqlite");
    assert.equal(summary.counts.completed, 5, "counted once at start");
    const response = await postOrder(second.url);
    await response.body?.cancel();
    await waitUntilSettled(second.url, 10_000);
    await sleep(50);
    const after = await (await fetch(`${second.url}/dashboard/api/summary`))
      .json();
    assert.equal(after.counts.completed, 6, "then kept from events");
    assert.equal(after.counts.pending, 0);
    second.kill("SIGTERM");
    assert.equal((await second.status).code, 0);
  } finally {
    await Deno.remove(directory, { recursive: true });
  }
});
