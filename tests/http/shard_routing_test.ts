import assert from "node:assert/strict";
import { shardFor } from "../../lib/http/shard_routing.ts";
import { createOrderIdFactory, shardOfKey } from "../../lib/orders/order_id.ts";

const at = (path: string, init: RequestInit = {}) =>
  new Request(`http://localhost${path}`, init);

Deno.test("shardFor(): a cancel and an order's stream go to the order's shard; a read of one order, a list and an unkeyed POST stay where they arrive", () => {
  const id = createOrderIdFactory({ shard: 1 })();
  assert.equal(shardFor(at(`/orders/${id}/cancel`, { method: "POST" }), 2), 1);
  assert.equal(shardFor(at(`/orders/${id}/events`), 2), 1);
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
