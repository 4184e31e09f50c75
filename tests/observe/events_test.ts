import assert from "node:assert/strict";
import { OrderEventHub } from "../../lib/observe/events.ts";
import type { Order } from "../../lib/orders/order.ts";

function order(id: string, status: Order["status"] = "pending"): Order {
  return {
    id,
    customer_id: "c",
    restaurant_id: "r",
    items: ["x"],
    status,
    created_at: 0,
    updated_at: 0,
    attempts: 0,
    failure_reason: null,
    cancel_requested: false,
    timeline: [],
  };
}

Deno.test("OrderEventHub numbers events and delivers them in order to every subscriber", async () => {
  const hub = new OrderEventHub();
  const first = hub.subscribe();
  const second = hub.subscribe();
  hub.publishChange(order("A"), "created");
  hub.publishChange({
    ...order("A", "processing"),
    timeline: [{ at: 1, type: "status", status: "processing" }],
  }, 1);
  for (const subscription of [first, second]) {
    const events = [await subscription.next(), await subscription.next()];
    assert.deepEqual(
      events.map((event) =>
        typeof event === "string" ? event : [event.id, event.name]
      ),
      [
        [1, "created"],
        [2, "status"],
      ],
    );
  }
  hub.close();
  assert.equal(await first.next(), "closed");
});

Deno.test("OrderEventHub filters per subscription", async () => {
  const hub = new OrderEventHub();
  const onlyB = hub.subscribe({ filter: (event) => event.order.id === "B" });
  hub.publishChange(order("A"), "created");
  hub.publishChange(order("B"), "created");
  const event = await onlyB.next();
  assert.ok(typeof event !== "string" && event.order.id === "B");
  onlyB.close();
  assert.equal(hub.subscriberCount, 0);
});

Deno.test("OrderEventHub replays kept events after a Last-Event-ID, and says when it cannot", async () => {
  const hub = new OrderEventHub({ historySize: 3 });
  const watching = hub.subscribe(); // events are kept while someone listens
  for (const id of ["A", "B", "C", "D", "E"]) {
    hub.publishChange(order(id), "created"); // ids 1–5
  }
  const resumed = hub.subscribe({ afterId: 3 });
  assert.equal(resumed.replayed, true);
  const replayed = [await resumed.next(), await resumed.next()];
  assert.deepEqual(
    replayed.map((event) => typeof event === "string" ? event : event.id),
    [4, 5],
  );
  const tooOld = hub.subscribe({ afterId: 1 }); // event 2 is gone
  assert.equal(tooOld.replayed, false);
  const fromAnotherLife = hub.subscribe({ afterId: 99 });
  assert.equal(fromAnotherLife.replayed, false);
  watching.close();
  hub.close();
});

Deno.test("a subscriber that falls behind its buffer is dropped; the publisher never waits", async () => {
  const hub = new OrderEventHub({ subscriberBuffer: 5 });
  const slow = hub.subscribe();
  const fast = hub.subscribe();
  const received: number[] = [];
  const reading = (async () => {
    while (true) {
      const event = await fast.next();
      if (typeof event === "string") return;
      received.push(event.id);
    }
  })();
  for (let index = 0; index < 20; index++) {
    hub.publishChange(order(`O${index}`), "created");
    await Promise.resolve(); // the fast reader keeps up
  }
  assert.equal(await slow.next(), "overflow");
  hub.close();
  await reading;
  assert.equal(received.length, 20);
});

Deno.test("OrderEventHub keeps only the newest events, in order, as its ring wraps", async () => {
  const hub = new OrderEventHub({ historySize: 4 });
  const watching = hub.subscribe();
  for (let index = 0; index < 11; index++) {
    hub.publishChange(order(`O${index}`), "created"); // ids 1–11
  }
  const resumed = hub.subscribe({ afterId: 7 });
  assert.equal(resumed.replayed, true);
  const ids = [];
  for (let index = 0; index < 4; index++) {
    const event = await resumed.next();
    ids.push(typeof event === "string" ? event : event.id);
  }
  assert.deepEqual(ids, [8, 9, 10, 11]);
  assert.equal(
    hub.subscribe({ afterId: 6 }).replayed,
    false,
    "event 7 is gone",
  );
  watching.close();
  hub.close();
});

Deno.test("OrderEventHub keeps no history while nobody listens: no one can come back for those events", () => {
  const hub = new OrderEventHub();
  for (const id of ["A", "B", "C"]) hub.publishChange(order(id), "created");
  assert.equal(hub.subscribe({ afterId: 1 }).replayed, false);
  // Nothing was missed after the newest id, so there is nothing to replay.
  const upToDate = hub.subscribe({ afterId: 3 });
  assert.equal(upToDate.replayed, true);
  assert.equal(upToDate.replayedCount, 0);
  hub.close();
});

Deno.test("OrderEventHub keeps the history for historyLingerMs after the last subscription ends, then drops it", () => {
  let now = 1_000_000;
  const hub = new OrderEventHub({ historyLingerMs: 60_000, now: () => now });
  const client = hub.subscribe();
  hub.publishChange(order("A"), "created"); // 1, seen by the client
  client.close(); // the client's connection drops
  now += 59_000;
  hub.publishChange(order("B"), "created"); // 2, missed
  const back = hub.subscribe({ afterId: 1 });
  assert.equal(back.replayed, true, "reconnected within the linger");
  assert.equal(back.replayedCount, 1);
  back.close();
  now += 60_000; // a whole linger with nobody listening
  hub.publishChange(order("C"), "created"); // 3: history dropped, not kept
  const late = hub.subscribe({ afterId: 2 });
  assert.equal(late.replayed, false, "came back after the linger");
  late.close();
  hub.close();
});

Deno.test("OrderEventHub with a shared store's numbers: a client resuming from the newest event published while nobody listened has nothing to replay, and gets what follows once it listens", async () => {
  const hub = new OrderEventHub();
  // Store sequence numbers, with gaps (other schemas' or rolled-back ids).
  hub.publishStored({ id: 40, name: "created", order: order("A") });
  hub.publishStored({ id: 46, name: "status", order: order("A", "completed") });
  const first = hub.subscribe({ afterId: 46 });
  assert.equal(first.replayed, true, "nothing was missed after 46");
  assert.equal(first.replayedCount, 0);
  first.close();
  hub.publishStored({ id: 52, name: "created", order: order("B") });
  // Reconnected within the linger, from the same id: 52 was missed.
  const back = hub.subscribe({ afterId: 46 });
  assert.equal(back.replayed, true);
  assert.equal(back.replayedCount, 1);
  const missed = await back.next();
  assert.equal(typeof missed === "string" ? missed : missed.id, 52);
  assert.equal(hub.subscribe({ afterId: 40 }).replayed, false, "41–46 gone");
  hub.close();
});
