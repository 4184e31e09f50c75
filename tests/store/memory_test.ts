import assert from "node:assert/strict";
import { StoreFullError } from "../../lib/orders/errors.ts";
import { MemoryStore } from "../../lib/store/memory.ts";
import { storeContract } from "./contract.ts";

storeContract(
  "memory",
  () =>
    Promise.resolve(new MemoryStore()).then((store) => ({
      store,
      coordination: store.coordination,
      control: store.control,
      webhooks: store.webhooks,
      dispose: () => Promise.resolve(),
    })),
);

const input = (index: number) => ({
  customer_id: `c_${index}`,
  restaurant_id: "r_1",
  items: ["x"],
});

async function finish(store: MemoryStore, id: string): Promise<void> {
  await store.transition(id, {
    action: "cancel",
    from: ["pending"],
    to: "cancelled",
  });
}

Deno.test("MemoryStore at maxOrders evicts the oldest finished order, never an active one", async () => {
  const store = new MemoryStore({ maxOrders: 3 });
  const a = (await store.create(input(1))).order; // stays pending
  const b = (await store.create(input(2))).order;
  const c = (await store.create(input(3))).order;
  await finish(store, b.id);
  await finish(store, c.id);
  const d = (await store.create(input(4))).order;
  assert.equal(store.size, 3);
  assert.ok(await store.get(a.id), "a pending order is never evicted");
  assert.equal(
    await store.get(b.id),
    undefined,
    "the oldest finished order went",
  );
  assert.ok(await store.get(c.id));
  assert.ok(await store.get(d.id));
});

Deno.test("MemoryStore refuses new orders when full of active ones", async () => {
  const store = new MemoryStore({ maxOrders: 2 });
  await store.create(input(1));
  await store.create(input(2));
  await assert.rejects(store.create(input(3)), StoreFullError);
  assert.equal(store.size, 2);
});

Deno.test("MemoryStore forgets the idempotency key of an evicted order", async () => {
  const store = new MemoryStore({ maxOrders: 1 });
  const first = (await store.create(input(1), { idempotencyKey: "k" })).order;
  await finish(store, first.id);
  await store.create(input(2));
  assert.equal(await store.getByIdempotencyKey("k"), undefined);
});

Deno.test("MemoryStore keeps listing correctly through many evictions", async () => {
  const store = new MemoryStore({ maxOrders: 100 });
  const ids: string[] = [];
  for (let index = 0; index < 5000; index++) {
    const { order } = await store.create(input(index));
    ids.push(order.id);
    await finish(store, order.id);
  }
  const page = await store.list({ limit: 1000 });
  assert.deepEqual(page.orders.map((order) => order.id), ids.slice(-100));
  const after = await store.list({ limit: 10, after: ids[4950] });
  assert.deepEqual(
    after.orders.map((order) => order.id),
    ids.slice(4951, 4961),
  );
});
