/**
 * The store contract: every `OrderStore` backend runs this same suite.
 * Each test gets a fresh store from the factory, so tests never see each
 * other's orders.
 */

import assert from "node:assert/strict";
import {
  ClaimLostError,
  IdempotencyConflictError,
  InvalidTransitionError,
  OrderNotFoundError,
} from "../../lib/orders/errors.ts";
import type { NewOrder, Order } from "../../lib/orders/order.ts";
import type {
  ControlRecords,
  Coordination,
  ListOptions,
  OrderRepository,
  Transition,
} from "../../lib/orders/order_store.ts";
import { applyTransition } from "../../lib/orders/transition.ts";
import type { WebhookStore } from "../../lib/webhooks/webhook_store.ts";
import { waitUntil } from "../helpers.ts";
import { webhookContract } from "./webhook_contract.ts";

/** Makes a fresh, empty store, its coordination, control records and webhooks, and a function that disposes of them. */
export type StoreFactory = () => Promise<
  {
    store: OrderRepository;
    coordination: Coordination;
    control: ControlRecords;
    webhooks: WebhookStore;
    dispose: () => Promise<void>;
  }
>;

const burger: NewOrder = {
  customer_id: "c_12345",
  restaurant_id: "r_456",
  items: ["veggie_burger", "fries"],
};

function orderFor(index: number): NewOrder {
  return {
    customer_id: `c_${index}`,
    restaurant_id: "r_1",
    items: [`item_${index}`],
  };
}

/** A worker's first change to an order: start it, as the holder of its claim. */
export const CLAIMED_START = {
  action: "start",
  from: ["pending" as const],
  to: "processing" as const,
  incrementAttempts: true,
  claimed: true,
};

/** Registers the contract's tests for the backend called `name`. */
export function storeContract(name: string, factory: StoreFactory): void {
  const test = (
    title: string,
    body: (
      store: OrderRepository,
      coordination: Coordination,
      control: ControlRecords,
      webhooks: WebhookStore,
    ) => Promise<void>,
  ) =>
    Deno.test(`${name} store: ${title}`, async () => {
      const { store, coordination, control, webhooks, dispose } =
        await factory();
      try {
        await body(store, coordination, control, webhooks);
      } finally {
        await dispose();
      }
    });

  test(
    "control records: read what was written, the last write wins, an unset one reads undefined",
    async (_store, _coordination, control) => {
      assert.equal(await control.read("processing.paused"), undefined);
      await control.write("processing.paused", "yes");
      assert.equal(await control.read("processing.paused"), "yes");
      await control.write("processing.paused", "no");
      assert.equal(await control.read("processing.paused"), "no");
      assert.equal(await control.read("another"), undefined);
    },
  );

  test(
    "control records: writeIfAbsent sets a name once; of 20 racing calls exactly one sets it and the rest read its value",
    async (_store, _coordination, control) => {
      const answers = await Promise.all(
        Array.from(
          { length: 20 },
          (_, index) => control.writeIfAbsent("bulk:key-1", `value-${index}`),
        ),
      );
      const setters = answers.filter((answer) => answer === undefined);
      assert.equal(setters.length, 1);
      const kept = await control.read("bulk:key-1");
      assert.ok(kept?.startsWith("value-"));
      for (const answer of answers) {
        if (answer !== undefined) assert.equal(answer, kept);
      }
      assert.equal(await control.writeIfAbsent("bulk:key-1", "later"), kept);
      assert.equal(await control.read("bulk:key-1"), kept);
    },
  );

  test("create() stores a pending order with a fresh id and a timeline", async (store) => {
    const { order, created } = await store.create(burger);
    assert.equal(created, true);
    assert.match(order.id, /^ORD-[0-9A-Z]{26}$/);
    assert.equal(order.status, "pending");
    assert.equal(order.attempts, 0);
    assert.equal(order.failure_reason, null);
    assert.equal(order.cancel_requested, false);
    assert.deepEqual(order.items, burger.items);
    assert.equal(order.created_at, order.updated_at);
    assert.deepEqual(order.timeline.map((entry) => entry.type), ["status"]);
    assert.deepEqual(await store.get(order.id), order);
  });

  test("awkward but valid strings come back exactly as sent, and a retry with the same key and body matches", async (store) => {
    const awkward: NewOrder = {
      customer_id: "🍔 c\u2028line\u2029para",
      restaurant_id: "Cafe\u0301 \u202Eright-to-left \uFEFF",
      items: [
        "𝒳 astral",
        "e\u0301\u0327 combining",
        "日本語の弁当",
        "quote\" back\\slash '; DROP TABLE orders; --",
        "a\u00A0b\u200Dc",
        "\u{10FFFF} last code point",
      ],
    };
    const { order } = await store.create(awkward, { idempotencyKey: "k-1" });
    const read = await store.get(order.id);
    assert.equal(read?.customer_id, awkward.customer_id);
    assert.equal(read?.restaurant_id, awkward.restaurant_id);
    assert.deepEqual(read?.items, awkward.items);
    const listed = (await store.list({ limit: 10 })).orders[0];
    assert.deepEqual(listed?.items, awkward.items);
    const retried = await store.create(structuredClone(awkward), {
      idempotencyKey: "k-1",
    });
    assert.equal(retried.created, false);
    assert.equal(retried.order.id, order.id);
  });

  test("applies every change as applyTransition does (the one rule; PostgreSQL's SQL mirrors it)", async (store) => {
    const { order } = await store.create(burger);
    const changes: Transition[] = [
      CLAIMED_START,
      {
        action: "record a step of",
        from: ["processing"],
        claimed: true,
        append: [{ type: "step_finished", step: "payment", attempt: 1 }],
      },
      {
        action: "retry",
        from: ["processing"],
        claimed: true,
        set: { attempts: 2 },
        append: [{ type: "attempt_failed", attempt: 1, reason: "declined" }],
      },
      {
        action: "cancel",
        from: ["processing"],
        set: { cancel_requested: true },
        append: [{ type: "cancel_requested" }],
      },
      {
        action: "mark failed",
        from: ["processing"],
        to: "failed",
        claimed: true,
        set: { failure_reason: "declined twice" },
      },
    ];
    // Times are each store's own clock; everything else must agree.
    const timeless = (value: Order) => ({
      ...value,
      updated_at: 0,
      timeline: value.timeline.map((entry) => ({ ...entry, at: 0 })),
    });
    let current = order;
    for (const change of changes) {
      const expected = applyTransition(current, change, current.updated_at);
      current = await store.transition(order.id, change);
      assert.deepEqual(timeless(current), timeless(expected), change.action);
      assert.deepEqual(
        timeless((await store.get(order.id))!),
        timeless(expected),
      );
    }
  });

  test("get() answers undefined for an unknown id", async (store) => {
    assert.equal(await store.get("ORD-00000000000000000000000000"), undefined);
  });

  test("ids are unique and sort in creation order under concurrent creates", async (store) => {
    const results = await Promise.all(
      Array.from({ length: 500 }, (_, index) => store.create(orderFor(index))),
    );
    const ids = results.map((result) => result.order.id);
    assert.equal(new Set(ids).size, ids.length);
    const page = await store.list({ limit: 1000 });
    const listed = page.orders.map((order) => order.id);
    assert.deepEqual(listed, [...listed].sort());
    assert.deepEqual([...listed].sort(), [...ids].sort());
  });

  test("an idempotency key with the same body returns the original order", async (store) => {
    const first = await store.create(burger, { idempotencyKey: "key-1" });
    const again = await store.create(
      { ...burger, items: [...burger.items] },
      { idempotencyKey: "key-1" },
    );
    assert.equal(again.created, false);
    assert.equal(again.order.id, first.order.id);
    assert.equal(
      (await store.getByIdempotencyKey("key-1"))?.id,
      first.order.id,
    );
    assert.equal(await store.getByIdempotencyKey("key-2"), undefined);
  });

  test("an idempotency key with a different body is refused", async (store) => {
    await store.create(burger, { idempotencyKey: "key-1" });
    await assert.rejects(
      store.create({ ...burger, items: ["salad"] }, {
        idempotencyKey: "key-1",
      }),
      IdempotencyConflictError,
    );
  });

  test("concurrent creates with one idempotency key create exactly one order", async (store) => {
    const results = await Promise.all(
      Array.from(
        { length: 50 },
        () => store.create(burger, { idempotencyKey: "same" }),
      ),
    );
    assert.equal(results.filter((result) => result.created).length, 1);
    assert.equal(new Set(results.map((result) => result.order.id)).size, 1);
    assert.equal((await store.list({ limit: 100 })).orders.length, 1);
  });

  test("transition() applies when the order matches and records the change", async (store) => {
    const { order } = await store.create(burger);
    const started = await store.transition(order.id, {
      action: "start",
      from: ["pending"],
      to: "processing",
      set: { attempts: 1 },
    });
    assert.equal(started.status, "processing");
    assert.equal(started.attempts, 1);
    const stepped = await store.transition(order.id, {
      action: "record",
      from: ["processing"],
      append: [{ type: "step_finished", step: "payment", attempt: 1 }],
    });
    assert.equal(stepped.status, "processing");
    assert.deepEqual(
      stepped.timeline.map((entry) =>
        entry.type === "status" ? entry.status : entry.type
      ),
      ["pending", "processing", "step_finished"],
    );
    assert.ok(stepped.updated_at >= order.updated_at);
    assert.deepEqual(await store.get(order.id), stepped);
  });

  test("transition() refuses when the status does not match, and changes nothing", async (store) => {
    const { order } = await store.create(burger);
    const error = await store.transition(order.id, {
      action: "complete",
      from: ["processing"],
      to: "completed",
    }).catch((error) => error);
    assert.ok(error instanceof InvalidTransitionError);
    assert.equal(error.actual, "pending");
    assert.deepEqual(await store.get(order.id), order);
  });

  test("transition() honours the cancel_requested condition", async (store) => {
    const { order } = await store.create(burger);
    await store.transition(order.id, {
      action: "start",
      from: ["pending"],
      to: "processing",
    });
    await store.transition(order.id, {
      action: "cancel",
      from: ["processing"],
      cancelRequested: false,
      set: { cancel_requested: true },
    });
    await assert.rejects(
      store.transition(order.id, {
        action: "complete",
        from: ["processing"],
        cancelRequested: false,
        to: "completed",
      }),
      InvalidTransitionError,
    );
    const cancelled = await store.transition(order.id, {
      action: "cancel",
      from: ["processing"],
      to: "cancelled",
    });
    assert.equal(cancelled.status, "cancelled");
  });

  test("transition() of an unknown order throws OrderNotFoundError", async (store) => {
    await assert.rejects(
      store.transition("ORD-00000000000000000000000000", {
        action: "start",
        from: ["pending"],
        to: "processing",
      }),
      OrderNotFoundError,
    );
  });

  test("racing transitions on one order have exactly one winner", async (store) => {
    const { order } = await store.create(burger);
    const outcomes = await Promise.allSettled(
      Array.from(
        { length: 40 },
        (_, index) =>
          store.transition(
            order.id,
            index % 2 === 0
              ? { action: "start", from: ["pending"], to: "processing" }
              : { action: "cancel", from: ["pending"], to: "cancelled" },
          ),
      ),
    );
    const winners = outcomes.filter((outcome) =>
      outcome.status === "fulfilled"
    );
    assert.equal(winners.length, 1);
    for (const outcome of outcomes) {
      if (outcome.status === "rejected") {
        assert.ok(outcome.reason instanceof InvalidTransitionError);
      }
    }
    const final = await store.get(order.id);
    assert.equal(
      final?.timeline.filter((entry) => entry.type === "status").length,
      2,
    );
  });

  test("transition() counts attempts and keeps every kind of timeline entry", async (store) => {
    const { order } = await store.create(burger);
    await store.transition(order.id, {
      action: "start",
      from: ["pending"],
      to: "processing",
      incrementAttempts: true,
    });
    await store.transition(order.id, {
      action: "retry",
      from: ["processing"],
      incrementAttempts: true,
      append: [
        { type: "step_finished", step: "restaurant_confirmation", attempt: 1 },
        { type: "attempt_failed", attempt: 1, reason: "payment declined" },
        { type: "cancel_requested" },
      ],
    });
    const requeued = await store.transition(order.id, {
      action: "recover",
      from: ["processing"],
      to: "pending",
      append: [{ type: "interrupted", attempt: 2 }],
    });
    assert.equal(requeued.attempts, 2);
    assert.deepEqual(requeued.timeline.map(({ at: _at, ...entry }) => entry), [
      { type: "status", status: "pending" },
      { type: "status", status: "processing" },
      { type: "step_finished", step: "restaurant_confirmation", attempt: 1 },
      { type: "attempt_failed", attempt: 1, reason: "payment declined" },
      { type: "cancel_requested" },
      { type: "interrupted", attempt: 2 },
      { type: "status", status: "pending" },
    ]);
    assert.deepEqual(await store.get(order.id), requeued);
  });

  test("transition() refuses a change the state machine does not allow", async (store) => {
    const { order } = await store.create(burger);
    await store.transition(order.id, {
      action: "cancel",
      from: ["pending"],
      to: "cancelled",
    });
    await assert.rejects(
      store.transition(order.id, {
        action: "revive",
        from: ["cancelled"],
        to: "pending",
      }),
      InvalidTransitionError,
    );
    assert.equal((await store.get(order.id))?.status, "cancelled");
  });

  test("orders already read do not change when the order does", async (store) => {
    const { order } = await store.create(burger);
    const read = await store.get(order.id);
    await store.transition(order.id, {
      action: "start",
      from: ["pending"],
      to: "processing",
    });
    assert.equal(read?.status, "pending");
    assert.equal(read?.timeline.length, 1);
  });

  test("list() pages oldest first, with a cursor, a limit and a status filter", async (store) => {
    const ids: string[] = [];
    for (let index = 0; index < 7; index++) {
      ids.push((await store.create(orderFor(index))).order.id);
    }
    await store.transition(ids[1]!, {
      action: "cancel",
      from: ["pending"],
      to: "cancelled",
    });
    await store.transition(ids[4]!, {
      action: "cancel",
      from: ["pending"],
      to: "cancelled",
    });

    const first = await store.list({ limit: 3 });
    assert.deepEqual(first.orders.map((order) => order.id), ids.slice(0, 3));
    assert.equal(first.hasMore, true);
    const second = await store.list({ limit: 3, after: ids[2] });
    assert.deepEqual(second.orders.map((order) => order.id), ids.slice(3, 6));
    assert.equal(second.hasMore, true);
    const last = await store.list({ limit: 3, after: ids[5] });
    assert.deepEqual(last.orders.map((order) => order.id), ids.slice(6));
    assert.equal(last.hasMore, false);

    const cancelled = await store.list({ limit: 1, status: "cancelled" });
    assert.deepEqual(cancelled.orders.map((order) => order.id), [ids[1]]);
    assert.equal(cancelled.hasMore, true);
    const rest = await store.list({
      limit: 5,
      status: "cancelled",
      after: ids[1],
    });
    assert.deepEqual(rest.orders.map((order) => order.id), [ids[4]]);
    assert.equal(rest.hasMore, false);
  });

  test("list() filters by customer, restaurant and creation time, with any status, and pages every match once in id order", async (store) => {
    // Three batches a few milliseconds apart: two customers, three
    // restaurants.
    const made: Order[] = [];
    for (let batch = 0; batch < 3; batch++) {
      if (batch > 0) await new Promise((resolve) => setTimeout(resolve, 5));
      for (let index = 0; index < 6; index++) {
        const order = (await store.create({
          customer_id: ["c_a", "c_b"][index % 2]!,
          restaurant_id: ["r_1", "r_2", "r_3"][index % 3]!,
          items: [`dish_${batch}_${index}`],
        })).order;
        made.push(order);
      }
    }
    for (const order of made.filter((_, index) => index % 4 === 0)) {
      await store.transition(order.id, {
        action: "cancel",
        from: ["pending"],
        to: "cancelled",
      });
    }
    const cancelled = new Set(
      made.filter((_, index) => index % 4 === 0).map((order) => order.id),
    );
    // Pages of two, following the cursor, as GET /orders does.
    const listAll = async (filters: Omit<ListOptions, "limit" | "after">) => {
      const ids: string[] = [];
      let after: string | undefined;
      while (true) {
        const page = await store.list({ ...filters, limit: 2, after });
        ids.push(...page.orders.map((order) => order.id));
        after = page.orders.at(-1)?.id;
        if (!page.hasMore || after === undefined) return ids;
      }
    };
    const startOf = (batch: number) => made[batch * 6]!.created_at;
    assert.ok(startOf(1) > made[5]!.created_at, "batches apart in time");
    assert.ok(startOf(2) > made[11]!.created_at, "batches apart in time");
    const expect = (keep: (order: Order, index: number) => boolean) =>
      made.filter(keep).map((order) => order.id);
    const cases: Array<
      [Omit<ListOptions, "limit" | "after">, (o: Order, i: number) => boolean]
    > = [
      [{ customerId: "c_a" }, (_, i) => i % 2 === 0],
      [{ restaurantId: "r_2" }, (_, i) => i % 6 % 3 === 1],
      [{ customerId: "c_b", restaurantId: "r_3" }, (_, i) => i % 6 === 5],
      [
        { customerId: "c_a", status: "cancelled" },
        (o, i) => i % 2 === 0 && cancelled.has(o.id),
      ],
      [
        { status: "pending", restaurantId: "r_1" },
        (o, i) => i % 3 === 0 && !cancelled.has(o.id),
      ],
      [{ createdAfter: startOf(1) }, (_, i) => i >= 6],
      [{ createdBefore: startOf(2) }, (_, i) => i < 12],
      [
        { createdAfter: startOf(1), createdBefore: startOf(2) },
        (_, i) => i >= 6 && i < 12,
      ],
      [
        { createdAfter: startOf(1), customerId: "c_b" },
        (_, i) => i >= 6 && i % 2 === 1,
      ],
      [{ customerId: "nobody" }, () => false],
      [{ createdAfter: startOf(2) + 60_000 }, () => false],
      [{ createdBefore: made[0]!.created_at }, () => false],
    ];
    for (const [filters, keep] of cases) {
      assert.deepEqual(
        await listAll(filters),
        expect(keep),
        JSON.stringify(filters),
      );
    }
  });

  test("paging while orders are added neither skips nor repeats an order", async (store) => {
    for (let index = 0; index < 20; index++) {
      await store.create(orderFor(index));
    }
    const seen: string[] = [];
    let after: string | undefined;
    let added = 20;
    while (true) {
      const page = await store.list({ limit: 3, after });
      seen.push(...page.orders.map((order) => order.id));
      // A writer adds orders between every page.
      if (added < 60) {
        await Promise.all([
          store.create(orderFor(added++)),
          store.create(orderFor(added++)),
        ]);
      }
      if (!page.hasMore) break;
      after = page.orders.at(-1)!.id;
    }
    const all = (await store.list({ limit: 1000 })).orders.map((order) =>
      order.id
    );
    assert.equal(new Set(seen).size, seen.length, "no order repeated");
    assert.deepEqual(
      seen,
      all.slice(0, seen.length),
      "no order skipped, oldest first",
    );
    assert.ok(seen.length >= 20);
  });

  // Claims: what lets instances share work without running an order twice.

  const start = CLAIMED_START;

  test(
    "a new order is claimed by the instance that created it: its worker's claimed changes apply, and claimPending() does not hand it out again",
    async (store, coordination) => {
      const { order } = await store.create(burger);
      assert.deepEqual(await coordination.claimPending(10), []);
      const started = await store.transition(order.id, start);
      assert.equal(started.status, "processing");
    },
  );

  test(
    "release() hands back only this instance's pending orders; claimPending() then takes them oldest first, at most the limit",
    async (store, coordination) => {
      const ids: string[] = [];
      for (let index = 0; index < 5; index++) {
        ids.push((await store.create(orderFor(index))).order.id);
      }
      await store.transition(ids[4]!, start); // processing: not handed back
      let wakes = 0;
      coordination.onUnclaimed(() => wakes++);
      assert.equal(await coordination.release([...ids].reverse()), 4);
      // Shared stores wake through the database (NOTIFY): soon, not at once.
      await waitUntil(() => wakes >= 1, "claimers woken by a release");
      assert.equal(await coordination.release(ids), 0, "nothing is held twice");
      assert.deepEqual(await coordination.claimPending(3), ids.slice(0, 3));
      assert.deepEqual(await coordination.claimPending(3), ids.slice(3, 4));
      assert.deepEqual(await coordination.claimPending(3), []);
    },
  );

  test(
    "a failed order retried (failed → pending, attempts from none, the failure kept in a retried entry) is offered as unclaimed work, which claimPending() takes once",
    async (store, coordination) => {
      const { order } = await store.create(burger);
      await store.transition(order.id, start);
      await store.transition(order.id, {
        action: "fail",
        from: ["processing"],
        to: "failed",
        set: { failure_reason: "payment provider unavailable" },
        claimed: true,
      });
      const retry: Transition = {
        action: "retry",
        from: ["failed"],
        to: "pending",
        set: { attempts: 0, failure_reason: null },
        append: [{
          type: "retried",
          attempt: 1,
          reason: "payment provider unavailable",
        }],
      };
      const retried = await store.transition(order.id, retry);
      assert.equal(retried.status, "pending");
      assert.equal(retried.attempts, 0);
      assert.equal(retried.failure_reason, null);
      assert.deepEqual(
        retried.timeline.slice(-2).map((entry) => entry.type),
        ["retried", "status"],
      );
      assert.deepEqual(await store.get(order.id), retried, "as stored");
      await assert.rejects(
        store.transition(order.id, retry),
        InvalidTransitionError,
        "a second retry finds it pending",
      );
      let wakes = 0;
      coordination.onUnclaimed(() => wakes++);
      await coordination.offer([order.id]);
      await waitUntil(() => wakes >= 1, "claimers woken by the offer");
      assert.deepEqual(await coordination.claimPending(10), [order.id]);
      assert.deepEqual(await coordination.claimPending(10), []);
      // Claimed again: its worker's claimed changes apply.
      const restarted = await store.transition(order.id, start);
      assert.equal(restarted.attempts, 1);
    },
  );

  test(
    "a claimed change is refused with ClaimLostError once the claim was handed back, and changes nothing; an unclaimed change still applies",
    async (store, coordination) => {
      const { order } = await store.create(burger);
      await coordination.release([order.id]);
      await assert.rejects(
        store.transition(order.id, start),
        (error: Error) =>
          error instanceof ClaimLostError && error.orderId === order.id,
      );
      assert.equal((await store.get(order.id))?.status, "pending");
      const cancelled = await store.transition(order.id, {
        action: "cancel",
        from: ["pending"],
        to: "cancelled",
      });
      assert.equal(cancelled.status, "cancelled");
      assert.deepEqual(
        await coordination.claimPending(10),
        [],
        "a finished order is no work",
      );
    },
  );

  test(
    "claiming again restores the claim, and a finished order holds none",
    async (store, coordination) => {
      const { order } = await store.create(burger);
      await coordination.release([order.id]);
      assert.deepEqual(await coordination.claimPending(1), [order.id]);
      await store.transition(order.id, start);
      await store.transition(order.id, {
        action: "complete",
        from: ["processing"],
        to: "completed",
        claimed: true,
      });
      assert.equal(await coordination.release([order.id]), 0);
      assert.deepEqual(await coordination.claimPending(10), []);
    },
  );

  test(
    "heartbeat() keeps a live instance's claims, and rescue() leaves them alone",
    async (store, coordination) => {
      const { order } = await store.create(burger);
      await store.transition(order.id, start);
      assert.equal(await coordination.heartbeat(), true);
      assert.equal(await coordination.rescue(), 0);
      const step = await store.transition(order.id, {
        action: "record",
        from: ["processing"],
        claimed: true,
        append: [{ type: "step_finished", step: "payment", attempt: 1 }],
      });
      assert.equal(step.status, "processing");
    },
  );

  test("countByStatus() counts the orders of each status", async (store) => {
    const ids: string[] = [];
    for (let index = 0; index < 4; index++) {
      ids.push((await store.create(orderFor(index))).order.id);
    }
    await store.transition(ids[0]!, start);
    await store.transition(ids[1]!, {
      action: "cancel",
      from: ["pending"],
      to: "cancelled",
    });
    assert.deepEqual(await store.countByStatus(), {
      pending: 2,
      processing: 1,
      completed: 0,
      failed: 0,
      cancelled: 1,
    });
  });

  webhookContract((title, body) =>
    test(
      title,
      (store, coordination, _control, webhooks) =>
        body(store, webhooks, coordination),
    )
  );
}
