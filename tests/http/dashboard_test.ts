import assert from "node:assert/strict";
import {
  drainSystem,
  EXAMPLE_ORDER,
  testSystem,
  waitUntil,
} from "../helpers.ts";

const KEY = "dashboard-test-key-0123456789";

async function postOrders(
  system: ReturnType<typeof testSystem>,
  count: number,
): Promise<string[]> {
  const ids: string[] = [];
  for (let index = 0; index < count; index++) {
    const response = await system.app.request("/orders", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(EXAMPLE_ORDER),
    });
    assert.equal(response.status, 201);
    ids.push((await response.json()).id);
  }
  return ids;
}

Deno.test("GET /dashboard/api/summary reports the traffic it saw: counts, per-second rates, processing times, this instance's queue and workers", async () => {
  const system = testSystem({ workers: 3, queueCapacity: 50 });
  await system.feedStarted;
  await postOrders(system, 4);
  // One more that fails: a step that throws, with one attempt only.
  const failing = testSystem({
    workers: 1,
    maxAttempts: 1,
    runStep: () => Promise.reject(new Error("kitchen closed")),
  });
  await failing.feedStarted;
  await postOrders(failing, 1);
  system.pool.start();
  failing.pool.start();
  await waitUntil(
    () => system.dashboard.figures().counts.completed === 4,
    "4 completed",
  );
  await waitUntil(
    () => failing.dashboard.figures().counts.failed === 1,
    "1 failed",
  );

  const response = await system.app.request("/dashboard/api/summary");
  assert.equal(response.status, 200);
  const summary = await response.json();
  assert.equal(summary.store, "memory");
  assert.deepEqual(summary.counts, {
    pending: 0,
    processing: 0,
    completed: 4,
    failed: 0,
    cancelled: 0,
  });
  assert.equal(summary.instances.length, 1);
  assert.equal(summary.instances[0].self, true);
  assert.equal(summary.instances[0].status.queue_capacity, 50);
  assert.equal(summary.instances[0].status.workers_total, 3);
  assert.deepEqual(summary.instances[0].status.finished, {
    completed: 4,
    failed: 0,
    cancelled: 0,
  });
  const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);
  assert.equal(sum(summary.throughput.created), 4);
  assert.equal(sum(summary.throughput.finished), 4);
  assert.equal(summary.throughput.created.length, 900);
  assert.equal(summary.processing_ms.samples, 4);
  assert.ok(summary.processing_ms.p50 >= 0);
  assert.ok(summary.processing_ms.p99 >= summary.processing_ms.p50);
  assert.deepEqual(summary.recent_failures, []);

  const failed = await (await failing.app.request("/dashboard/api/summary"))
    .json();
  assert.equal(failed.counts.failed, 1);
  assert.equal(failed.recent_failures.length, 1);
  assert.equal(failed.recent_failures[0].failure_reason, "kitchen closed");
  assert.equal(failed.recent_failures[0].attempts, 1);
  await drainSystem(system);
  await drainSystem(failing);
});

Deno.test("GET /dashboard/api/orders finds orders by an id prefix, and refuses a prefix that is not one", async () => {
  const system = testSystem();
  const ids = await postOrders(system, 3);
  const prefix = ids[0]!.slice(0, 14);
  const found = await (await system.app.request(
    `/dashboard/api/orders?prefix=${prefix.toLowerCase()}&limit=10`,
  )).json();
  assert.deepEqual(
    found.map((order: { id: string }) => order.id),
    ids.filter((id) => id.startsWith(prefix)),
  );
  const exact = await (await system.app.request(
    `/dashboard/api/orders?prefix=${ids[1]}`,
  )).json();
  assert.deepEqual(exact.map((order: { id: string }) => order.id), [ids[1]]);
  for (
    const query of ["prefix=DROP%20TABLE", "prefix=ORD-&limit=0", "limit=5"]
  ) {
    const response = await system.app.request(`/dashboard/api/orders?${query}`);
    assert.equal(response.status, 400, query);
    assert.equal(
      response.headers.get("content-type"),
      "application/problem+json",
    );
  }
  await drainSystem(system);
});

Deno.test("with API keys the dashboard page and its code are open, its data needs a key, and it allows this origin only", async () => {
  const system = testSystem({ apiKeys: [KEY] });
  const page = await system.app.request("/dashboard");
  assert.equal(page.status, 200);
  const html = await page.text();
  assert.match(html, /<script src="\/dashboard\/assets\/app.js">/);
  assert.doesNotMatch(html, /https?:\/\//, "no other host named in the page");
  const csp = page.headers.get("content-security-policy") ?? "";
  assert.match(csp, /default-src 'self'/);
  assert.match(csp, /connect-src 'self'/);
  for (
    const asset of [
      "app.js",
      "order_page.js",
      "app.css",
      "uPlot.iife.min.js",
      "uPlot.min.css",
    ]
  ) {
    const response = await system.app.request(`/dashboard/assets/${asset}`);
    assert.equal(response.status, 200, asset);
    await response.body?.cancel();
  }
  assert.equal(
    (await system.app.request("/dashboard/assets/nope.js")).status,
    404,
  );
  const withoutKey = await system.app.request("/dashboard/api/summary");
  assert.equal(withoutKey.status, 401);
  await withoutKey.body?.cancel();
  const withKey = await system.app.request("/dashboard/api/summary", {
    headers: { authorization: `Bearer ${KEY}` },
  });
  assert.equal(withKey.status, 200);
  await withKey.body?.cancel();
  await drainSystem(system);
});
