/**
 * Webhooks divided between isolates, with two isolates' own webhooks in
 * one process and calls between them made directly (the mesh's part is
 * tested end to end).
 */

import assert from "node:assert/strict";
import { StoreUnavailableError } from "../../lib/orders/errors.ts";
import { newPendingOrder } from "../../lib/orders/order.ts";
import { MemoryWebhooks } from "../../lib/store/memory_webhooks.ts";
import {
  type RemoteWebhookCall,
  serveWebhookCall,
  ShardedWebhooks,
} from "../../lib/store/sharded_webhooks.ts";
import type { Endpoint } from "../../lib/webhooks/model.ts";
import { EXAMPLE_ORDER } from "../helpers.ts";

const endpoint: Endpoint = {
  id: "ep_01M9A0Q5W3J9Y3KX0V7D6T2B8N",
  url: "https://hooks.example.com/in",
  events: null,
  description: null,
  created_at: 1,
  disabled_at: null,
  disabled_reason: null,
  enabled_at: null,
  secrets: [{ secret: "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQ=", expires_at: null }],
};

/** Isolates 1 and 2, each with its own webhooks, seen through the first. */
function twoIsolates() {
  const own = [new MemoryWebhooks(), new MemoryWebhooks()];
  const woken = [0, 0];
  const remote = (isolate: number, call: RemoteWebhookCall) =>
    serveWebhookCall(own[isolate - 1]!, call, () => woken[isolate - 1]!++);
  const first = new ShardedWebhooks(own[0]!, [2], remote);
  const second = new ShardedWebhooks(own[1]!, [1], remote);
  return { own, woken, first, second };
}

Deno.test("an endpoint change through either isolate is made in both; each records and keeps its own orders' messages", async () => {
  const { own, first, second } = twoIsolates();
  await first.createEndpoint(endpoint);
  assert.deepEqual(await own[1]!.endpoint(endpoint.id), endpoint);
  await second.updateEndpoint(endpoint.id, { description: "moved" });
  assert.equal((await own[0]!.endpoint(endpoint.id))?.description, "moved");
  own[0]!.record(newPendingOrder("A", EXAMPLE_ORDER, 10), true, []);
  own[1]!.record(newPendingOrder("B", EXAMPLE_ORDER, 20), true, []);
  // Each outbox holds its own; a read through either isolate sees both,
  // newest first, to the limit.
  assert.deepEqual(
    (await own[0]!.deliveries(endpoint.id, 10)).map((d) => d.order_id),
    ["A"],
  );
  for (const through of [first, second]) {
    assert.deepEqual(
      (await through.deliveries(endpoint.id, 10)).map((d) => d.order_id),
      ["B", "A"],
    );
    assert.deepEqual(
      (await through.deliveries(endpoint.id, 1)).map((d) => d.order_id),
      ["B"],
    );
  }
  await second.disable(endpoint.id, 30, "the endpoint answered 410 Gone");
  assert.equal((await own[0]!.endpoint(endpoint.id))?.disabled_at, 30);
  assert.equal(await first.deleteEndpoint(endpoint.id), true);
  assert.equal(await own[1]!.endpoint(endpoint.id), undefined);
});

Deno.test("a retry is made where the message lives, and wakes that isolate; the last success is any isolate's", async () => {
  const { own, woken, first } = twoIsolates();
  await first.createEndpoint(endpoint);
  own[1]!.record(newPendingOrder("B", EXAMPLE_ORDER, 20), true, []);
  const [held] = await own[1]!.claimDue(endpoint.id, 100, 10);
  await own[1]!.recordAttempt(held!.id, {
    status: "failed",
    next_attempt_at: null,
    last_status: 500,
    last_error: "the endpoint answered 500",
  });
  const wokenBefore = woken[1]!;
  const retried = await first.retryNow(endpoint.id, held!.id, 200);
  assert.equal(retried?.status, "pending");
  assert.equal(woken[1], wokenBefore + 1);
  assert.equal(await first.retryNow(endpoint.id, "msg_NONE", 200), undefined);
  assert.equal(await own[0]!.lastDelivered(endpoint.id), null);
  const [again] = await own[1]!.claimDue(endpoint.id, 200, 10);
  await own[1]!.recordAttempt(again!.id, {
    status: "delivered",
    next_attempt_at: null,
    last_status: 204,
    last_error: null,
  });
  const last = await first.lastDelivered(endpoint.id);
  assert.ok(last !== null && Math.abs(last - Date.now()) < 60_000);
  assert.equal(await first.retryFailed(endpoint.id, 0, 300), 0);
});

Deno.test("an isolate that cannot answer makes a change a StoreUnavailableError (a 503), and an unknown call is refused", async () => {
  const local = new MemoryWebhooks();
  const unreachable = new ShardedWebhooks(
    local,
    [2],
    () => Promise.reject(new Error("The isolate mesh is closed")),
  );
  await assert.rejects(
    unreachable.createEndpoint(endpoint),
    (error: Error) =>
      error instanceof StoreUnavailableError && /isolate 2/.test(error.message),
  );
  await assert.rejects(
    serveWebhookCall(
      local,
      { method: "claimDue" as RemoteWebhookCall["method"], args: [] },
      () => {},
    ),
    RangeError,
  );
});
