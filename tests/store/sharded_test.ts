import assert from "node:assert/strict";
import { createOrderIdFactory } from "../../lib/orders/order_id.ts";
import { MemoryStore } from "../../lib/store/memory.ts";
import { ShardedRepository } from "../../lib/store/sharded.ts";

/** Two shards, each seen from the first, as the first isolate sees them. */
function shards() {
  const stores = [0, 1].map((shard) =>
    new MemoryStore({ newId: createOrderIdFactory({ shard }) })
  );
  const view = new ShardedRepository(stores[0]!, {
    index: 0,
    count: 2,
    remote: (index) => stores[index]!,
  });
  return { stores, view };
}

const order = (index: number) => ({
  customer_id: `c_${index}`,
  restaurant_id: "r_1",
  items: ["x"],
});

Deno.test("ShardedRepository: pages over both shards list every order once, in id order, with the filters", async () => {
  const { stores, view } = shards();
  const made: string[] = [];
  for (let index = 0; index < 25; index++) {
    const store = stores[index % 3 === 0 ? 1 : 0]!;
    made.push((await store.create(order(index))).order.id);
  }
  const listed: string[] = [];
  let after: string | undefined;
  while (true) {
    const page = await view.list({ limit: 4, after });
    listed.push(...page.orders.map((one) => one.id));
    after = page.orders.at(-1)?.id;
    if (!page.hasMore) break;
  }
  assert.deepEqual(listed, [...made].sort());
  const pending = await view.list({ limit: 100, status: "pending" });
  assert.equal(pending.orders.length, 25);
  assert.equal((await view.countByStatus()).pending, 25);
});

Deno.test("ShardedRepository: a read of one order finds it in its shard, and an id of no shard finds nothing", async () => {
  const { stores, view } = shards();
  const { order: there } = await stores[1]!.create(order(1));
  assert.deepEqual(await view.get(there.id), there);
  assert.equal(await view.get("ORD-nonsense"), undefined);
});
