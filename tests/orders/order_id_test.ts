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
  // Made by more shards than run now: owned by the one its mark falls on.
  assert.equal(shardOfId(createOrderIdFactory({ shard: 3 })(), 2), 1);
  assert.equal(shardOfId(createOrderIdFactory({ shard: 4 })(), 3), 1);
  assert.equal(shardOfId("ORD-not-an-id", 2), undefined);
  assert.throws(() => createOrderIdFactory({ shard: 32 }), RangeError);
});

Deno.test("an id made by one isolate has one owner among any number of shards", () => {
  // The mark of an id made without a shard is its first random character.
  const idWithMark = (mark: string) => `ORD-01JD0000AB${mark}${"C".repeat(15)}`;
  for (const mark of "0123456789ABCDEFGHJKMNPQRSTVWXYZ") {
    assert.equal(shardOfId(idWithMark(mark), 1), 0, mark);
  }
  assert.equal(shardOfId(idWithMark("0"), 3), 0);
  assert.equal(shardOfId(idWithMark("5"), 3), 2);
  assert.equal(shardOfId(idWithMark("Z"), 3), 1); // the 32nd character
  assert.equal(shardOfId(idWithMark("Z"), 2), 1);
  assert.equal(shardOfId(idWithMark("Y"), 2), 0);
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
