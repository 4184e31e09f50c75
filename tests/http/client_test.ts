import assert from "node:assert/strict";
import { hc } from "hono/client";
import type { AppType } from "../../lib/http/app.ts";
import { drainSystem, EXAMPLE_ORDER, testSystem } from "../helpers.ts";

Deno.test("Hono's typed client (hc<AppType>) creates an order and reads it back", async () => {
  const system = testSystem();
  try {
    const client = hc<AppType>("http://localhost", {
      fetch: (input: RequestInfo | URL, init?: RequestInit) =>
        system.app.request(input, init),
    });
    const created = await client.orders.$post({ json: EXAMPLE_ORDER });
    assert.equal(created.status, 201);
    const order = await created.json();
    // Typed: `order.id` and `order.status` are known to the compiler.
    const id: string = order.id;
    // @ts-expect-error — the response type is known, so a wrong field is a compile error.
    order.no_such_field;
    const read = await client.orders[":id"].$get({ param: { id } });
    assert.equal(read.status, 200);
    const again = await read.json();
    assert.equal(again.id, id);
    assert.deepEqual(again.items, EXAMPLE_ORDER.items);
    const health = await client.health.$get();
    assert.deepEqual(await health.json(), {
      status: "ok",
      processing: "running",
    });
  } finally {
    await drainSystem(system);
  }
});
