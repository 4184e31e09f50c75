/**
 * `POST /orders/retry`: failed orders put through again in bulk, by
 * filter and by time range, and a repeat with the same key changes
 * nothing. (Across instances on PostgreSQL, and across the isolates of
 * `PARALLEL`: tests/e2e/operator_test.ts.)
 */

import assert from "node:assert/strict";
import type { Order } from "../../lib/orders/order.ts";
import { problemSchema } from "../../lib/http/schemas.ts";
import { testSystem, waitForStatus } from "../helpers.ts";

const post = (path: string, body: unknown, headers: HeadersInit = {}) =>
  new Request(`http://localhost${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });

const order = (restaurant: string, customer = "c_1") => ({
  customer_id: customer,
  restaurant_id: restaurant,
  items: ["pho"],
});

const retriedEntries = (order: Order) =>
  order.timeline.filter((entry) => entry.type === "retried").length;

Deno.test("POST /orders/retry puts through again the failed orders a filter and a time range match, and a repeat with the same key does nothing", async () => {
  // The payment provider is down for restaurant r_down's orders until
  // `providerUp`; r_card's fail with another reason.
  let providerUp = false;
  const system = testSystem({
    workers: 3,
    maxAttempts: 1,
    runStep: (step, order) => {
      if (step !== "payment" || providerUp || order.restaurant_id === "r_up") {
        return Promise.resolve();
      }
      return Promise.reject(
        new Error(
          order.restaurant_id === "r_card"
            ? "card declined"
            : "payment provider unavailable",
        ),
      );
    },
  });
  const { app, store } = system;
  system.pool.start();
  // Retried orders are unclaimed work: the claimer queues them.
  system.claimer.start();
  const create = async (body: unknown) =>
    (await (await app.request(post("/orders", body))).json()).id as string;
  try {
    const early = [];
    for (let index = 0; index < 3; index++) {
      early.push(await create(order("r_down", `c_${index}`)));
    }
    for (const id of early) await waitForStatus(store, id, ["failed"]);
    await new Promise((resolve) => setTimeout(resolve, 20));
    const between = new Date().toISOString();
    await new Promise((resolve) => setTimeout(resolve, 20));
    const late = [
      await create(order("r_down", "c_9")),
      await create(order("r_down", "c_9")),
    ];
    const declined = await create(order("r_card"));
    const fine = await create(order("r_up"));
    for (const id of [...late, declined]) {
      await waitForStatus(store, id, ["failed"]);
    }
    providerUp = true;

    // Nothing matches: nothing changes.
    const none = await app.request(
      post("/orders/retry", { restaurant_id: "r_nowhere" }),
    );
    assert.equal(none.status, 200);
    assert.deepEqual(await none.json(), { retried: 0 });

    // By time range, with a key.
    const key = { "idempotency-key": "incident-42" };
    const first = await app.request(
      post("/orders/retry", { failed_before: between }, key),
    );
    assert.equal(first.status, 200);
    assert.deepEqual(await first.json(), { retried: 3 });
    assert.equal(first.headers.get("idempotent-replayed"), null);
    for (const id of early) {
      const done = await waitForStatus(store, id, ["completed"]);
      assert.equal(retriedEntries(done), 1);
    }
    for (const id of [...late, declined]) {
      assert.equal((await store.get(id))!.status, "failed");
    }

    // The same key and body again: the first answer, and nothing retried.
    const repeat = await app.request(
      post("/orders/retry", { failed_before: between }, key),
    );
    assert.equal(repeat.status, 200);
    assert.deepEqual(await repeat.json(), { retried: 3 });
    assert.equal(repeat.headers.get("idempotent-replayed"), "true");
    for (const id of [...late, declined]) {
      assert.equal((await store.get(id))!.status, "failed");
    }
    // The same key with another filter is refused.
    const reused = await app.request(
      post("/orders/retry", { restaurant_id: "r_down" }, key),
    );
    assert.equal(reused.status, 422);
    assert.equal(
      problemSchema.parse(await reused.json()).type,
      "urn:order-service:problem:idempotency-key-reused",
    );

    // By restaurant and reason prefix: the late r_down ones, not r_card's.
    const byReason = await app.request(
      post("/orders/retry", {
        restaurant_id: "r_down",
        reason: "payment provider",
        failed_after: between,
      }),
    );
    assert.deepEqual(await byReason.json(), { retried: 2 });
    for (const id of late) await waitForStatus(store, id, ["completed"]);
    assert.equal((await store.get(declined))!.status, "failed");
    assert.equal((await store.get(fine))!.status, "completed");
    assert.equal(retriedEntries((await store.get(fine))!), 0);

    // By customer: r_card's order is c_1's.
    const byCustomer = await app.request(
      post("/orders/retry", { customer_id: "c_1" }),
    );
    assert.deepEqual(await byCustomer.json(), { retried: 1 });
    await waitForStatus(store, declined, ["completed"]);
  } finally {
    await system.claimer.stop();
    await system.service.stopAccepting();
    await system.pool.done;
  }
});

Deno.test("POST /orders/retry refuses a bad body with a problem naming the field, and a bad key", async () => {
  const system = testSystem();
  try {
    for (
      const [body, field] of [
        [{ status: "failed" }, "status"],
        [{ failed_after: "yesterday" }, "failed_after"],
        [{ reason: "" }, "reason"],
        [{ restaurant_id: 7 }, "restaurant_id"],
      ] as const
    ) {
      const answer = await system.app.request(post("/orders/retry", body));
      assert.equal(answer.status, 422, JSON.stringify(body));
      assert.match(JSON.stringify(await answer.json()), new RegExp(field));
    }
    const badKey = await system.app.request(
      post("/orders/retry", {}, { "idempotency-key": "with space" }),
    );
    assert.equal(badKey.status, 400);
    const notJson = await system.app.request(
      new Request("http://localhost/orders/retry", {
        method: "POST",
        body: "{}",
        headers: { "content-type": "text/plain" },
      }),
    );
    assert.equal(notJson.status, 415);
  } finally {
    await system.service.stopAccepting();
  }
});
