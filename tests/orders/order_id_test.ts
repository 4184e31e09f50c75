import assert from "node:assert/strict";
import {
  createOrderIdFactory,
  shardOfId,
  shardOfKey,
} from "../../lib/orders/order_id.ts";

Deno.test("a shard's ids name it, and still sort in the order they were made", () => {
  for (const shard of [0, 1, 7, 31]) {
    const next = createOrderIdFactory({ shard });
    const ids = Array.from({ length: 500 }, () => next());
    assert.ok(ids.every((id) => shardOfId(id, 32) === shard), String(shard));
    assert.deepEqual([...ids].sort(), ids);
    assert.equal(new Set(ids).size, ids.length);
  }
  assert.equal(shardOfId(createOrderIdFactory({ shard: 3 })(), 2), undefined);
  assert.equal(shardOfId("ORD-not-an-id", 2), undefined);
  assert.throws(() => createOrderIdFactory({ shard: 32 }), RangeError);
});

Deno.test("shardOfKey() spreads keys over the shards, the same key always to the same one", () => {
  const counts = [0, 0];
  for (let index = 0; index < 1000; index++) {
    const shard = shardOfKey(`key-${index}`, 2);
    assert.equal(shardOfKey(`key-${index}`, 2), shard);
    counts[shard]!++;
  }
  assert.ok(counts.every((count) => count > 400), JSON.stringify(counts));
});
