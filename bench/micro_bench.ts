/**
 * Micro-benchmarks (`deno bench`): the channel, the memory store, request
 * validation and response formatting — the pieces on the hot path of
 * `POST /orders`.
 */

import { Channel } from "../lib/async/channel.ts";
import { toOrderJson } from "../lib/http/order_json.ts";
import { createOrderIdFactory } from "../lib/orders/order_id.ts";
import { newOrderSchema } from "../lib/http/schemas.ts";
import { MemoryStore } from "../lib/store/memory.ts";

const EXAMPLE = {
  customer_id: "c_12345",
  restaurant_id: "r_456",
  items: ["veggie_burger", "fries"],
};
const EXAMPLE_TEXT = JSON.stringify(EXAMPLE);

const buffered = new Channel<number>({ capacity: 1024 });
Deno.bench(
  "channel: trySend + tryReceive (buffered)",
  { group: "channel" },
  () => {
    buffered.trySend(1);
    buffered.tryReceive();
  },
);

const handOff = new Channel<number>();
Deno.bench(
  "channel: receive() then trySend (hand-off)",
  { group: "channel" },
  async () => {
    const receiving = handOff.receive();
    handOff.trySend(1);
    await receiving;
  },
);

const newId = createOrderIdFactory();
Deno.bench("order id", { group: "store" }, () => {
  newId();
});

const store = new MemoryStore({ maxOrders: 50_000_000 });
Deno.bench("store: create", { group: "store" }, async () => {
  await store.create(EXAMPLE);
});

const readStore = new MemoryStore();
const { order: existing } = await readStore.create(EXAMPLE);
Deno.bench("store: get", { group: "store" }, async () => {
  await readStore.get(existing.id);
});

Deno.bench(
  "store: create + start + 3 steps + complete",
  { group: "store" },
  async () => {
    const { order } = await store.create(EXAMPLE);
    await store.transition(order.id, {
      action: "start",
      from: ["pending"],
      to: "processing",
      set: { attempts: 1 },
    });
    for (
      const step of [
        "restaurant_confirmation",
        "payment",
        "courier_assignment",
      ] as const
    ) {
      await store.transition(order.id, {
        action: "record",
        from: ["processing"],
        cancelRequested: false,
        append: [{ type: "step_finished", step, attempt: 1 }],
      });
    }
    await store.transition(order.id, {
      action: "complete",
      from: ["processing"],
      to: "completed",
    });
  },
);

const decoder = new TextDecoder("utf-8", { fatal: true });
const exampleBytes = new TextEncoder().encode(EXAMPLE_TEXT);
Deno.bench("validation: decode + JSON.parse + zod", { group: "http" }, () => {
  newOrderSchema.parse(JSON.parse(decoder.decode(exampleBytes)));
});

Deno.bench("response: toOrderJson + JSON.stringify (pending order)", {
  group: "http",
}, () => {
  JSON.stringify(toOrderJson(existing));
});
