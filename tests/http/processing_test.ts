/**
 * Pausing and resuming processing, through the API, on one system.
 * (The instances that share PostgreSQL: tests/e2e/instances_test.ts; a
 * restart of SQLite and the shutdown while paused: tests/e2e/operator_test.ts.)
 */

import assert from "node:assert/strict";
import type { Step } from "../../lib/orders/order.ts";
import { EXAMPLE_ORDER, testSystem, waitForStatus } from "../helpers.ts";

const post = (path: string, body?: unknown) =>
  new Request(`http://localhost${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: body === undefined ? null : JSON.stringify(body),
  });

Deno.test("pause with 50 orders queued: none starts while paused (and /ready, /health, /metrics say so); all finish after resume", async () => {
  const system = testSystem({ workers: 5, queueCapacity: 100 });
  const { app, store } = system;
  system.pool.start();
  try {
    const paused = await app.request(post("/processing/pause"));
    assert.equal(paused.status, 200);
    const state = await paused.json();
    assert.equal(state.paused, true);
    assert.ok(Date.parse(state.since) <= Date.now());
    const ids: string[] = [];
    for (let index = 0; index < 50; index++) {
      const created = await app.request(post("/orders", EXAMPLE_ORDER));
      assert.equal(created.status, 201);
      ids.push((await created.json()).id);
    }
    // Long enough for five workers with no step delays to finish 50 orders
    // many times over, were they not paused.
    await new Promise((resolve) => setTimeout(resolve, 300));
    for (const id of ids) {
      assert.equal((await store.get(id))!.status, "pending");
    }
    assert.equal(system.pool.busy, 0);

    const ready = await app.request("/ready");
    assert.equal(ready.status, 200);
    assert.deepEqual(await ready.json(), {
      status: "ready",
      processing: "paused",
    });
    assert.deepEqual(await (await app.request("/health")).json(), {
      status: "ok",
      processing: "paused",
    });
    assert.match(
      await (await app.request("/metrics")).text(),
      /^processing_paused 1$/m,
    );
    assert.equal(
      (await (await app.request("/processing")).json()).paused,
      true,
    );

    const resumed = await app.request(post("/processing/resume"));
    assert.equal(resumed.status, 200);
    assert.equal((await resumed.json()).paused, false);
    for (const id of ids) await waitForStatus(store, id, ["completed"]);
    assert.match(
      await (await app.request("/metrics")).text(),
      /^processing_paused 0$/m,
    );
    assert.equal(
      (await (await app.request("/health")).json()).processing,
      "running",
    );
  } finally {
    await system.service.stopAccepting();
    await system.pool.done;
  }
});

Deno.test("a pause lets the step already running finish, and the order goes on to its end; the next order does not start", async () => {
  const release = Promise.withResolvers<void>();
  let started = 0;
  const system = testSystem({
    workers: 1,
    runStep: async (step: Step) => {
      if (step === "restaurant_confirmation") started++;
      if (started === 1 && step === "restaurant_confirmation") {
        await release.promise;
      }
    },
  });
  const { app, store } = system;
  system.pool.start();
  try {
    const first = (await (await app.request(post("/orders", EXAMPLE_ORDER)))
      .json()).id;
    await waitForStatus(store, first, ["processing"]);
    await app.request(post("/processing/pause"));
    const second = (await (await app.request(post("/orders", EXAMPLE_ORDER)))
      .json()).id;
    release.resolve();
    await waitForStatus(store, first, ["completed"]);
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal((await store.get(second))!.status, "pending");
    assert.equal(started, 1);
    await app.request(post("/processing/resume"));
    await waitForStatus(store, second, ["completed"]);
  } finally {
    await system.service.stopAccepting();
    await system.pool.done;
  }
});

Deno.test("paused with a full queue: POST answers 503 at once, counted in orders_refused_total and the instance's status", async () => {
  const system = testSystem({ workers: 1, queueCapacity: 3 });
  const { app } = system;
  system.pool.start();
  try {
    await app.request(post("/processing/pause"));
    const answers: number[] = [];
    for (let index = 0; index < 6; index++) {
      answers.push((await app.request(post("/orders", EXAMPLE_ORDER))).status);
    }
    // One order may sit in the worker's hands, unstarted; the queue holds 3.
    const created = answers.filter((status) => status === 201).length;
    const refused = answers.filter((status) => status === 503).length;
    assert.ok(created === 3 || created === 4, `created ${created}`);
    assert.equal(created + refused, 6);
    assert.match(
      await (await app.request("/metrics")).text(),
      new RegExp(`^orders_refused_total ${refused}$`, "m"),
    );
    assert.equal(system.localStatus().refused, refused);
    assert.equal(system.localStatus().paused, true);
  } finally {
    await app.request(post("/processing/resume"));
    await system.service.stopAccepting();
    await system.pool.done;
  }
});
