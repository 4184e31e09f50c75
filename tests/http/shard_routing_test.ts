import assert from "node:assert/strict";
import { shardFor, shardRouter } from "../../lib/http/shard_routing.ts";
import { createOrderIdFactory, shardOfKey } from "../../lib/orders/order_id.ts";

const at = (path: string, init: RequestInit = {}) =>
  new Request(`http://localhost${path}`, init);

Deno.test("shardFor(): a cancel and an order's stream go to the order's shard; a read of one order, a list and an unkeyed POST stay where they arrive", () => {
  const id = createOrderIdFactory({ shard: 1 })();
  assert.equal(shardFor(at(`/orders/${id}/cancel`, { method: "POST" }), 2), 1);
  assert.equal(shardFor(at(`/orders/${id}/events`), 2), 1);
  assert.equal(shardFor(at(`/orders/${id}/retry`, { method: "POST" }), 2), 1);
  assert.equal(shardFor(at(`/orders/${id}`), 2), undefined);
  assert.equal(shardFor(at("/orders?limit=5"), 2), undefined);
  assert.equal(shardFor(at("/orders", { method: "POST" }), 2), undefined);
  assert.equal(shardFor(at("/orders/ORD-nonsense/cancel"), 2), undefined);
});

Deno.test("shardFor(): a keyed POST goes to its key's shard; /events and the dashboard's figures to the first", () => {
  const keyed = at("/orders", {
    method: "POST",
    headers: { "idempotency-key": "retry-me" },
  });
  assert.equal(shardFor(keyed, 2), shardOfKey("retry-me", 2));
  assert.equal(shardFor(at("/events"), 2), 0);
  assert.equal(shardFor(at("/dashboard/api/summary"), 2), 0);
  assert.equal(shardFor(at("/health"), 2), undefined);
});

Deno.test("shardFor(): where every isolate opens the one store (keysHop false), a keyed POST stays where it arrives; a cancel still goes to the order's owner", () => {
  const keyed = (key: string) =>
    at("/orders", { method: "POST", headers: { "idempotency-key": key } });
  for (let index = 0; index < 8; index++) {
    assert.equal(shardFor(keyed(`key-${index}`), 2, false), undefined);
  }
  const id = createOrderIdFactory({ shard: 1 })();
  assert.equal(
    shardFor(at(`/orders/${id}/cancel`, { method: "POST" }), 2, false),
    1,
  );
  assert.equal(shardFor(at("/events"), 2, false), 0);
});

Deno.test("shardRouter(): when the owner cannot answer, 503 problem+json with Retry-After and the request's id, as every answer of the app", async () => {
  const id = createOrderIdFactory({ shard: 1 })();
  const router = (requestIds: boolean) =>
    shardRouter({
      index: 0,
      count: 2,
      requestIds,
      local: () => new Response("here"),
      forward: () => Promise.reject(new Error("the isolate is gone")),
    });
  const cancel = (headers: Record<string, string> = {}) =>
    at(`/orders/${id}/cancel`, { method: "POST", headers });
  const answer = await router(true)(cancel({ "x-request-id": "trace-42" }));
  assert.equal(answer.status, 503);
  assert.equal(answer.headers.get("content-type"), "application/problem+json");
  assert.equal(answer.headers.get("retry-after"), "1");
  assert.equal(answer.headers.get("x-content-type-options"), "nosniff");
  assert.equal(answer.headers.get("x-request-id"), "trace-42");
  const problem = await answer.json();
  assert.equal(problem.status, 503);
  assert.equal(problem.request_id, "trace-42");
  assert.equal(problem.instance, `/orders/${id}/cancel`);
  // A client's id that is not safe to echo is replaced by a new one.
  const made = await router(true)(cancel({ "x-request-id": "a b" }));
  assert.match(made.headers.get("x-request-id")!, /^[0-9a-f-]{36}$/);
  await made.body?.cancel();
  const off = await router(false)(cancel());
  assert.equal(off.headers.get("x-request-id"), null);
  assert.equal((await off.json()).request_id, undefined);
  // Not the owner's request: answered here.
  assert.equal(await (await router(true)(at("/health"))).text(), "here");
});

Deno.test("shardFor: an operator's pause, resume and bulk retry go to the first isolate; reading the pause state goes nowhere in particular", () => {
  const request = (method: string, path: string) =>
    new Request(`http://localhost${path}`, { method });
  for (
    const path of ["/processing/pause", "/processing/resume", "/orders/retry"]
  ) {
    assert.equal(shardFor(request("POST", path), 4), 0, path);
  }
  assert.equal(shardFor(request("GET", "/processing"), 4), undefined);
});
