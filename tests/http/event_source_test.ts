/**
 * The order event stream as standard clients use it: the `eventsource` npm
 * package (the EventSource of browsers, for Deno and Node), and a plain
 * reconnect with `Last-Event-ID`.
 */

import assert from "node:assert/strict";
import { EventSource } from "../deps.ts";
import type { System } from "../../lib/system.ts";
import type { StepRunner } from "../../lib/orders/steps.ts";
import {
  drainSystem,
  EXAMPLE_ORDER,
  testSystem,
  waitForStatus,
  waitUntil,
} from "../helpers.ts";

const EVENT_NAMES = [
  "order",
  "created",
  "status",
  "step_finished",
  "attempt_failed",
  "cancel_requested",
  "interrupted",
];

/** Serves `system` on a free port, counting requests per path. */
function serve(system: System) {
  const requests = new Map<string, number[]>();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (request) => {
      const response = await system.app.fetch(request);
      const path = new URL(request.url).pathname;
      requests.set(path, [...(requests.get(path) ?? []), response.status]);
      return response;
    },
  );
  return { url: `http://127.0.0.1:${server.addr.port}`, requests, server };
}

/** Steps that each wait for a `release()`, or run freely after `releaseAll()`. */
function gatedSteps() {
  let permits = 0;
  let all = false;
  const waiting: Array<() => void> = [];
  const runStep: StepRunner = async () => {
    if (all) return;
    if (permits > 0) {
      permits--;
      return;
    }
    await new Promise<void>((resolve) => waiting.push(resolve));
  };
  return {
    runStep,
    release() {
      const next = waiting.shift();
      if (next) next();
      else permits++;
    },
    releaseAll() {
      all = true;
      for (const wake of waiting.splice(0)) wake();
    },
  };
}

/** Reads SSE frames from a response body until `count` events or its end. */
async function readEvents(response: Response, count: number) {
  const events: Array<{ event: string; id: string; data: string }> = [];
  const reader = response.body!.pipeThrough(new TextDecoderStream())
    .getReader();
  let buffered = "";
  while (events.length < count) {
    const { value, done } = await reader.read();
    if (done) break;
    buffered += value;
    let end;
    while ((end = buffered.indexOf("\n\n")) !== -1) {
      const frame = buffered.slice(0, end);
      buffered = buffered.slice(end + 2);
      if (frame.startsWith(":")) continue; // heartbeat
      const field = (name: string) =>
        frame.split("\n").find((line) => line.startsWith(`${name}: `))
          ?.slice(name.length + 2) ?? "";
      events.push({
        event: field("event"),
        id: field("id"),
        data: field("data"),
      });
    }
  }
  await reader.cancel();
  return events;
}

Deno.test("an EventSource following an order gets every change and stops reconnecting once the order is finished", async () => {
  const steps = gatedSteps();
  const system = testSystem({ runStep: steps.runStep });
  const { url, requests, server } = serve(system);
  system.pool.start();
  const { order } = await system.service.create(EXAMPLE_ORDER);
  const path = `/orders/${order.id}/events`;
  const source = new EventSource(`${url}${path}`);
  const received: string[] = [];
  for (const name of EVENT_NAMES) {
    source.addEventListener(name, (event) => {
      received.push(`${name}:${JSON.parse(event.data).status}`);
    });
  }
  try {
    await waitUntil(() => received.length > 0, "the snapshot arrived");
    steps.releaseAll();
    await waitForStatus(system.store, order.id, ["completed"]);
    // The stream ends after "completed"; EventSource reconnects with the
    // last id, gets 204 and closes for good.
    await waitUntil(
      () => source.readyState === EventSource.CLOSED,
      "the EventSource closed",
      10_000,
    );
    assert.deepEqual(requests.get(path), [200, 204]);
    assert.equal(received.at(-1), "status:completed");
    assert.equal(
      received.filter((entry) => entry.startsWith("step_finished")).length,
      3,
    );
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.deepEqual(requests.get(path), [200, 204], "no more reconnects");
  } finally {
    source.close();
    await drainSystem(system);
    await server.shutdown();
  }
});

Deno.test("a reconnect with Last-Event-ID replays what the client missed, not a fresh snapshot", async () => {
  const steps = gatedSteps();
  const system = testSystem({ runStep: steps.runStep });
  const { url, server } = serve(system);
  system.pool.start();
  const { order } = await system.service.create(EXAMPLE_ORDER);
  const path = `${url}/orders/${order.id}/events`;
  try {
    await waitForStatus(system.store, order.id, ["processing"]);
    const [snapshot] = await readEvents(await fetch(path), 1);
    assert.equal(snapshot?.event, "order");
    // Two steps finish while the client is away.
    steps.release();
    steps.release();
    await waitUntil(
      () => system.hub.nextId - 1 >= Number(snapshot!.id) + 2,
      "two steps finished",
    );
    const replay = await readEvents(
      await fetch(path, { headers: { "last-event-id": snapshot!.id } }),
      2,
    );
    assert.deepEqual(replay.map((event) => event.event), [
      "step_finished",
      "step_finished",
    ]);
    assert.deepEqual(
      replay.map((event) => Number(event.id)),
      [Number(snapshot!.id) + 1, Number(snapshot!.id) + 2],
    );
    // An id this process never sent gets a fresh snapshot instead.
    const [fresh] = await readEvents(
      await fetch(path, { headers: { "last-event-id": "999999999" } }),
      1,
    );
    assert.equal(fresh?.event, "order");
    steps.releaseAll();
    await waitForStatus(system.store, order.id, ["completed"]);
    const last = String(system.hub.nextId - 1);
    const finished = await fetch(path, { headers: { "last-event-id": last } });
    assert.equal(finished.status, 204);
  } finally {
    steps.releaseAll();
    await drainSystem(system);
    await server.shutdown();
  }
});
