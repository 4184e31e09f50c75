/**
 * The webhook port's contract: every store's endpoints and outbox run this
 * same suite (from the store contract), each test on a fresh store.
 */

import assert from "node:assert/strict";
import type {
  Coordination,
  OrderRepository,
} from "../../lib/orders/order_store.ts";
import type { Endpoint, WebhookEventType } from "../../lib/webhooks/model.ts";
import type { WebhookStore } from "../../lib/webhooks/webhook_store.ts";

type Body = (
  store: OrderRepository,
  webhooks: WebhookStore,
  coordination: Coordination,
) => Promise<void>;

let endpoints = 0;

/** An endpoint as registration makes it. */
function endpointFor(
  events: WebhookEventType[] | null = null,
): Endpoint {
  endpoints++;
  return {
    id: `ep_${String(endpoints).padStart(26, "0")}`,
    url: `https://hooks.example.com/${endpoints}`,
    events,
    description: `endpoint ${endpoints}`,
    created_at: 1_700_000_000_000 + endpoints,
    disabled_at: null,
    disabled_reason: null,
    enabled_at: null,
    secrets: [{
      secret: "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0",
      expires_at: null,
    }],
  };
}

const soup = { customer_id: "c_1", restaurant_id: "r_1", items: ["soup"] };
const CANCEL = {
  action: "cancel",
  from: ["pending" as const],
  to: "cancelled" as const,
};

const delivered = {
  status: "delivered" as const,
  next_attempt_at: null,
  last_status: 204,
  last_error: null,
};

/** Registers the webhook tests through `test` (the store contract's). */
export function webhookContract(test: (title: string, body: Body) => void) {
  test(
    "webhooks: an endpoint is kept as registered and listed oldest first; deleting it removes it and its deliveries",
    async (store, webhooks) => {
      const first = endpointFor();
      const second = endpointFor(["order.cancelled", "order.created"]);
      await webhooks.createEndpoint(first);
      await webhooks.createEndpoint(second);
      assert.deepEqual(await webhooks.endpoint(second.id), second);
      assert.deepEqual(await webhooks.endpoints(), [first, second]);
      await store.create(soup);
      assert.equal((await webhooks.deliveries(first.id, 10)).length, 1);
      assert.equal(await webhooks.deleteEndpoint(first.id), true);
      assert.equal(await webhooks.deleteEndpoint(first.id), false);
      assert.equal(await webhooks.endpoint(first.id), undefined);
      assert.deepEqual(await webhooks.deliveries(first.id, 10), []);
      assert.deepEqual(await webhooks.endpoints(), [second]);
    },
  );

  test(
    "webhooks: updateEndpoint changes the fields given and keeps the rest; a null clears events or description; an unknown one is undefined",
    async (store, webhooks) => {
      const endpoint = endpointFor(["order.created"]);
      await webhooks.createEndpoint(endpoint);
      const moved = await webhooks.updateEndpoint(endpoint.id, {
        url: "https://elsewhere.example.com/in",
      });
      assert.deepEqual(moved, {
        ...endpoint,
        url: "https://elsewhere.example.com/in",
      });
      const all = await webhooks.updateEndpoint(endpoint.id, {
        events: null,
        description: null,
      });
      assert.deepEqual(all, {
        ...endpoint,
        url: "https://elsewhere.example.com/in",
        events: null,
        description: null,
      });
      assert.deepEqual(await webhooks.endpoint(endpoint.id), all);
      const cancels = await webhooks.updateEndpoint(endpoint.id, {
        events: ["order.cancelled"],
        description: "cancellations",
      });
      assert.deepEqual(cancels?.events, ["order.cancelled"]);
      assert.equal(cancels?.description, "cancellations");
      assert.equal(cancels?.url, "https://elsewhere.example.com/in");
      // Two changes at once each keep the other's field.
      await Promise.all([
        webhooks.updateEndpoint(endpoint.id, {
          url: "https://third.example.com/in",
        }),
        webhooks.updateEndpoint(endpoint.id, { description: "both" }),
      ]);
      const both = await webhooks.endpoint(endpoint.id);
      assert.equal(both?.url, "https://third.example.com/in");
      assert.equal(both?.description, "both");
      assert.deepEqual(both?.events, ["order.cancelled"]);
      // The new events apply to the changes that follow.
      const { order } = await store.create(soup);
      await store.transition(order.id, CANCEL);
      assert.deepEqual(
        (await webhooks.deliveries(endpoint.id, 10)).map((d) => d.type),
        ["order.cancelled"],
      );
      assert.equal(
        await webhooks.updateEndpoint("ep_NOSUCHENDPOINT000000000000", {
          url: "https://x.example.com/",
        }),
        undefined,
      );
    },
  );

  test(
    "webhooks: a change records one pending delivery for each enabled endpoint that listens to its type, with the order as the change left it; a disabled endpoint gets none",
    async (store, webhooks) => {
      const all = endpointFor();
      const cancels = endpointFor(["order.cancelled"]);
      const off = endpointFor();
      for (const endpoint of [all, cancels, off]) {
        await webhooks.createEndpoint(endpoint);
      }
      await webhooks.disable(off.id, 5, "the endpoint answered 410 Gone");
      const { order } = await store.create(soup);
      const cancelled = await store.transition(order.id, CANCEL);
      const toAll = await webhooks.deliveries(all.id, 10);
      assert.deepEqual(toAll.map((d) => [d.type, d.order.status]), [
        ["order.cancelled", "cancelled"],
        ["order.created", "pending"],
      ]);
      for (const delivery of toAll) {
        assert.match(delivery.id, /^msg_[0-9A-Za-z]{26}$/);
        assert.equal(delivery.order_id, order.id);
        assert.equal(delivery.status, "pending");
        assert.equal(delivery.attempts, 0);
      }
      assert.deepEqual(toAll[0]!.order, cancelled);
      assert.deepEqual(toAll[1]!.order, order);
      assert.deepEqual(
        (await webhooks.deliveries(cancels.id, 10)).map((d) => d.type),
        ["order.cancelled"],
      );
      assert.deepEqual(await webhooks.deliveries(off.id, 10), []);
      const disabled = await webhooks.endpoint(off.id);
      assert.equal(disabled?.disabled_at, 5);
      assert.equal(disabled?.disabled_reason, "the endpoint answered 410 Gone");
    },
  );

  test(
    "webhooks: claimDue holds a due delivery for its claimer; one order's next message waits while the earlier is held; only the holder records the attempt, once",
    async (store, webhooks, coordination) => {
      // A PostgreSQL instance holds claims only while it is live.
      await coordination.heartbeat();
      const endpoint = endpointFor();
      await webhooks.createEndpoint(endpoint);
      const { order } = await store.create(soup);
      await store.transition(order.id, CANCEL);
      const later = Date.now() + 60_000;
      const first = await webhooks.claimDue(endpoint.id, later, 10);
      assert.deepEqual(first.map((d) => d.type), ["order.created"]);
      assert.deepEqual(await webhooks.claimDue(endpoint.id, later, 10), []);
      assert.equal(
        await webhooks.recordAttempt(first[0]!.id, {
          status: "pending",
          next_attempt_at: later + 5_000,
          last_status: 500,
          last_error: "the endpoint answered 500",
        }),
        true,
      );
      // Once the first has been tried and waits for its retry, the next goes.
      const second = await webhooks.claimDue(endpoint.id, later, 10);
      assert.deepEqual(second.map((d) => d.type), ["order.cancelled"]);
      assert.equal(
        await webhooks.recordAttempt(second[0]!.id, delivered),
        true,
      );
      assert.equal(
        await webhooks.recordAttempt(second[0]!.id, delivered),
        false,
      );
      const [cancelled, created] = await webhooks.deliveries(endpoint.id, 10);
      assert.equal(cancelled?.status, "delivered");
      assert.equal(cancelled?.attempts, 1);
      assert.equal(cancelled?.last_status, 204);
      assert.equal(created?.status, "pending");
      assert.equal(created?.next_attempt_at, later + 5_000);
      assert.equal(created?.last_error, "the endpoint answered 500");
      // Not due before its time; due at it.
      assert.deepEqual(await webhooks.claimDue(endpoint.id, later, 10), []);
      assert.deepEqual(
        (await webhooks.claimDue(endpoint.id, later + 5_000, 10)).map((d) =>
          d.id
        ),
        [created!.id],
      );
      const at = await webhooks.lastDelivered(endpoint.id);
      assert.ok(at !== null && Math.abs(at - Date.now()) < 60_000, `${at}`);
    },
  );

  test(
    "webhooks: a failed delivery is made due again by retryNow; an unknown one is not",
    async (store, webhooks, coordination) => {
      await coordination.heartbeat();
      const endpoint = endpointFor();
      await webhooks.createEndpoint(endpoint);
      await store.create(soup);
      const now = Date.now() + 1_000;
      const [claimed] = await webhooks.claimDue(endpoint.id, now, 10);
      await webhooks.recordAttempt(claimed!.id, {
        status: "failed",
        next_attempt_at: null,
        last_status: 500,
        last_error: "the endpoint answered 500",
      });
      assert.deepEqual(await webhooks.claimDue(endpoint.id, now + 1e9, 10), []);
      const retried = await webhooks.retryNow(
        endpoint.id,
        claimed!.id,
        now + 1,
      );
      assert.equal(retried?.status, "pending");
      assert.equal(retried?.next_attempt_at, now + 1);
      assert.deepEqual(
        (await webhooks.claimDue(endpoint.id, now + 1, 10)).map((d) => d.id),
        [claimed!.id],
      );
      assert.equal(
        await webhooks.retryNow(
          endpoint.id,
          "msg_NOSUCHMESSAGE0000000000000",
          1,
        ),
        undefined,
      );
      assert.equal(
        await webhooks.retryNow(
          "ep_NOSUCHENDPOINT000000000000",
          claimed!.id,
          1,
        ),
        undefined,
      );
    },
  );

  test(
    "webhooks: retryFailed makes due every failed delivery of a change at or after a time, and no other",
    async (store, webhooks, coordination) => {
      await coordination.heartbeat();
      const endpoint = endpointFor();
      await webhooks.createEndpoint(endpoint);
      const { order: early } = await store.create(soup);
      await new Promise((resolve) => setTimeout(resolve, 5));
      const { order: late } = await store.create(soup);
      const { order: taken } = await store.create(soup);
      const now = Date.now() + 1_000;
      for (const delivery of await webhooks.claimDue(endpoint.id, now, 10)) {
        await webhooks.recordAttempt(
          delivery.id,
          delivery.order_id === taken.id ? delivered : {
            status: "failed",
            next_attempt_at: null,
            last_status: 500,
            last_error: "the endpoint answered 500",
          },
        );
      }
      assert.equal(
        await webhooks.retryFailed(endpoint.id, late.created_at, now + 1),
        1,
      );
      const due = await webhooks.claimDue(endpoint.id, now + 1, 10);
      assert.deepEqual(due.map((d) => d.order_id), [late.id]);
      assert.equal(due[0]!.next_attempt_at, now + 1);
      assert.equal(await webhooks.retryFailed(endpoint.id, 0, now + 2), 1);
      assert.deepEqual(
        (await webhooks.claimDue(endpoint.id, now + 2, 10)).map((d) =>
          d.order_id
        ),
        [early.id],
      );
      assert.equal(await webhooks.retryFailed(endpoint.id, 0, now + 3), 0);
      assert.equal(
        await webhooks.retryFailed("ep_NOSUCHENDPOINT000000000000", 0, 1),
        0,
      );
    },
  );

  test(
    "webhooks: a disabled endpoint is enabled again from a time; enabling an enabled one changes nothing; an unknown one is undefined",
    async (store, webhooks) => {
      const endpoint = endpointFor();
      await webhooks.createEndpoint(endpoint);
      assert.deepEqual(await webhooks.enable(endpoint.id, 7), endpoint);
      await webhooks.disable(endpoint.id, 10, "every message failed");
      // Disabling a disabled one keeps the first time and reason.
      await webhooks.disable(endpoint.id, 11, "again");
      const enabled = await webhooks.enable(endpoint.id, 20);
      assert.deepEqual(enabled, {
        ...endpoint,
        disabled_at: null,
        disabled_reason: null,
        enabled_at: 20,
      });
      assert.deepEqual(await webhooks.endpoint(endpoint.id), enabled);
      // It hears changes again.
      await store.create(soup);
      assert.equal((await webhooks.deliveries(endpoint.id, 10)).length, 1);
      assert.equal(
        await webhooks.enable("ep_NOSUCHENDPOINT000000000000", 1),
        undefined,
      );
    },
  );

  test(
    "webhooks: deliveries are read by status; prune removes delivered messages last tried before the cutoff, at most the limit at a time; pending and failed ones stay",
    async (store, webhooks, coordination) => {
      await coordination.heartbeat();
      const endpoint = endpointFor();
      await webhooks.createEndpoint(endpoint);
      for (let index = 0; index < 5; index++) await store.create(soup);
      const now = Date.now() + 1_000;
      const claimed = await webhooks.claimDue(endpoint.id, now, 10);
      assert.equal(claimed.length, 5);
      const [failed, pending, ...rest] = claimed;
      for (const delivery of rest) {
        await webhooks.recordAttempt(delivery.id, delivered);
      }
      await webhooks.recordAttempt(failed!.id, {
        ...delivered,
        status: "failed",
        last_status: 500,
      });
      await webhooks.recordAttempt(pending!.id, {
        ...delivered,
        status: "pending",
        next_attempt_at: now + 5_000,
        last_status: 500,
      });
      // Filtered by status, newest first.
      const ids = async (status: "pending" | "delivered" | "failed") =>
        (await webhooks.deliveries(endpoint.id, 10, status)).map((d) => d.id);
      assert.deepEqual(await ids("failed"), [failed!.id]);
      assert.deepEqual(await ids("pending"), [pending!.id]);
      assert.deepEqual(
        await ids("delivered"),
        rest.map((d) => d.id).reverse(),
      );
      assert.deepEqual(
        (await webhooks.deliveries(endpoint.id, 2, "delivered")).length,
        2,
      );
      // Nothing was last tried a minute ago.
      assert.equal(await webhooks.prune(Date.now() - 60_000, 100), 0);
      const cutoff = Date.now() + 60_000;
      assert.equal(await webhooks.prune(cutoff, 2), 2);
      assert.equal(await webhooks.prune(cutoff, 100), 1);
      assert.equal(await webhooks.prune(cutoff, 100), 0);
      // The last success is still known, for the disabling window.
      const last = await webhooks.lastDelivered(endpoint.id);
      assert.ok(
        last !== null && Math.abs(last - Date.now()) < 60_000,
        `${last}`,
      );
      const left = await webhooks.deliveries(endpoint.id, 10);
      assert.deepEqual(
        left.map((d) => d.id).sort(),
        [failed!.id, pending!.id].sort(),
      );
    },
  );
}
