import assert from "node:assert/strict";
import { drainSystem, EXAMPLE_ORDER, testSystem } from "../helpers.ts";

/** A request body that sends `prefix` and then stalls until released. */
function stalledBody(prefix: string) {
  const release = Promise.withResolvers<void>();
  let sent = false;
  const stream = new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (!sent) {
        sent = true;
        controller.enqueue(new TextEncoder().encode(prefix));
        return;
      }
      await release.promise;
      controller.close();
    },
  });
  return { stream, release: release.resolve };
}

function postStream(body: ReadableStream<Uint8Array>) {
  return new Request("http://localhost/orders", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body,
  });
}

Deno.test("a body that does not arrive within BODY_TIMEOUT_MS answers 408 and creates nothing", async () => {
  const system = testSystem({ bodyLimits: { timeoutMs: 50 } });
  try {
    const { stream, release } = stalledBody('{"customer_id":"c');
    const startedAt = performance.now();
    const response = await system.app.request(postStream(stream));
    assert.equal(response.status, 408);
    assert.equal(
      response.headers.get("content-type"),
      "application/problem+json",
    );
    await response.body?.cancel();
    assert.ok(performance.now() - startedAt < 5000);
    assert.equal((await system.store.list({ limit: 10 })).orders.length, 0);
    release();
  } finally {
    await drainSystem(system);
  }
});

Deno.test("past MAX_INFLIGHT requests answer 503 at once; health checks still answer", async () => {
  const system = testSystem({ maxInFlight: 2 });
  try {
    const stalled = [stalledBody("{"), stalledBody("{")];
    const holding = stalled.map(({ stream }) =>
      system.app.request(postStream(stream))
    );
    await new Promise((resolve) => setTimeout(resolve, 10));
    const refused = await system.app.request("/orders");
    assert.equal(refused.status, 503);
    assert.equal(refused.headers.get("retry-after"), "1");
    await refused.body?.cancel();
    const health = await system.app.request("/health");
    assert.equal(health.status, 200);
    await health.body?.cancel();
    for (const { release } of stalled) release();
    for (const response of await Promise.all(holding)) {
      assert.equal(response.status, 400); // "{" is not JSON
      await response.body?.cancel();
    }
    // The slots are free again.
    const after = await system.app.request("/orders", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(EXAMPLE_ORDER),
    });
    assert.equal(after.status, 201);
    await after.body?.cancel();
  } finally {
    await drainSystem(system);
  }
});
