import assert from "node:assert/strict";
import { MemoryStore } from "../../lib/store/memory.ts";
import type { System } from "../../lib/system.ts";
import type { StepRunner } from "../../lib/orders/steps.ts";
import {
  drainSystem,
  EXAMPLE_ORDER,
  refusingStore,
  testSystem,
  waitForStatus,
} from "../helpers.ts";

const JSON_HEADERS = { "content-type": "application/json" };

function post(
  system: System,
  body: string | BodyInit,
  headers: Record<string, string> = JSON_HEADERS,
) {
  return system.app.request("/orders", { method: "POST", body, headers });
}

async function assertProblem(
  response: Response,
  status: number,
): Promise<Record<string, unknown>> {
  assert.equal(response.status, status);
  assert.equal(
    response.headers.get("content-type"),
    "application/problem+json",
  );
  const problem = await response.json();
  assert.equal(problem.status, status);
  assert.equal(typeof problem.type, "string");
  assert.equal(typeof problem.title, "string");
  assert.equal(typeof problem.detail, "string");
  return problem;
}

/** Runs `body` against a fresh system and drains it afterwards. */
function withSystem(
  title: string,
  body: (system: System) => Promise<void>,
  options: Parameters<typeof testSystem>[0] = {},
) {
  Deno.test(title, async () => {
    const system = testSystem(options);
    try {
      await body(system);
    } finally {
      await drainSystem(system);
    }
  });
}

withSystem(
  "POST /orders answers 201 with Location and the pending order",
  async (system) => {
    const response = await post(system, JSON.stringify(EXAMPLE_ORDER));
    assert.equal(response.status, 201);
    const order = await response.json();
    assert.equal(response.headers.get("location"), `/orders/${order.id}`);
    assert.match(order.id, /^ORD-/);
    assert.equal(order.status, "pending");
    assert.deepEqual(order.items, EXAMPLE_ORDER.items);
    assert.equal(order.attempts, 0);
    assert.equal(order.failure_reason, null);
    assert.match(order.created_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.equal(order.timeline[0].status, "pending");
  },
);

withSystem(
  "POST /orders links the order's event stream, its cancel action and the API description (RFC 8288), and each link leads there",
  async (system) => {
    const response = await post(system, JSON.stringify(EXAMPLE_ORDER));
    const { id } = await response.json();
    const links = new Map(
      [...(response.headers.get("link") ?? "").matchAll(
        /<([^>]+)>;\s*rel="([^"]+)"/g,
      )].map(([, target, rel]) => [rel, target]),
    );
    assert.deepEqual(Object.fromEntries(links), {
      "monitor": `/orders/${id}/events`,
      "urn:order-service:rel:cancel": `/orders/${id}/cancel`,
      "service-desc": "/openapi.json",
      "service-doc": "/docs",
    });
    const events = await system.app.request(links.get("monitor")!);
    assert.equal(events.status, 200);
    assert.match(events.headers.get("content-type") ?? "", /event-stream/);
    await events.body?.cancel();
    const openapi = await system.app.request(links.get("service-desc")!);
    assert.equal((await openapi.json()).openapi.slice(0, 2), "3.");
    const docs = await system.app.request(links.get("service-doc")!);
    assert.match(await docs.text(), /swagger/i);
    const cancel = await system.app.request(
      links.get("urn:order-service:rel:cancel")!,
      { method: "POST" },
    );
    assert.ok([200, 202, 409].includes(cancel.status), `${cancel.status}`);
    await cancel.body?.cancel();
  },
);

withSystem("POST /orders answers 400 for malformed JSON", async (system) => {
  await assertProblem(await post(system, '{"customer_id": '), 400);
});

withSystem(
  "POST /orders answers 400 for a body that is not UTF-8, without repairing it",
  async (system) => {
    const bytes = new TextEncoder().encode(JSON.stringify(EXAMPLE_ORDER));
    bytes[17] = 0xff; // inside the customer id
    const problem = await assertProblem(await post(system, bytes), 400);
    assert.match(String(problem.detail), /UTF-8/);
    assert.equal((await system.store.list({ limit: 10 })).orders.length, 0);
  },
);

withSystem(
  "POST /orders answers 415 when the body is not declared JSON",
  async (system) => {
    await assertProblem(
      await post(system, JSON.stringify(EXAMPLE_ORDER), {
        "content-type": "text/plain",
      }),
      415,
    );
    await assertProblem(
      await post(system, JSON.stringify(EXAMPLE_ORDER), {}),
      415,
    );
  },
);

withSystem(
  "POST /orders accepts application/json with a charset and +json types",
  async (system) => {
    const charset = await post(system, JSON.stringify(EXAMPLE_ORDER), {
      "content-type": "application/json; charset=utf-8",
    });
    assert.equal(charset.status, 201);
    await charset.body?.cancel();
  },
);

withSystem(
  "POST /orders answers 413 for a body over 64 KiB with a Content-Length",
  async (system) => {
    const huge = JSON.stringify({
      ...EXAMPLE_ORDER,
      items: ["x".repeat(70 * 1024)],
    });
    await assertProblem(await post(system, huge), 413);
  },
);

withSystem(
  "POST /orders answers 413 for a chunked body over 64 KiB, reading no further than the limit",
  async (system) => {
    let pulledBytes = 0;
    const chunk = new TextEncoder().encode("[" + "1,".repeat(4095));
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        pulledBytes += chunk.byteLength;
        if (pulledBytes > 10 * 1024 * 1024) controller.close();
        else controller.enqueue(chunk);
      },
    });
    await assertProblem(await post(system, stream), 413);
    assert.ok(
      pulledBytes < 64 * 1024 + 3 * chunk.byteLength,
      `read ${pulledBytes} bytes`,
    );
  },
);

withSystem("POST /orders answers 422 naming each bad field", async (system) => {
  const response = await post(
    system,
    JSON.stringify({
      customer_id: "",
      restaurant_id: 7,
      items: ["ok", ""],
      id: "ORD-MINE",
      status: "completed",
    }),
  );
  const problem = await assertProblem(response, 422);
  const fields = (problem.errors as Array<{ field: string; message: string }>)
    .map((error) => error.field).sort();
  assert.deepEqual(fields, [
    "customer_id",
    "id",
    "items.1",
    "restaurant_id",
    "status",
  ]);
});

withSystem(
  "POST /orders refuses strings a store could not keep as sent: control characters and lone surrogates, naming the field",
  async (system) => {
    const cases: Array<[Record<string, unknown>, string, RegExp]> = [
      [{ ...EXAMPLE_ORDER, customer_id: "a\u0000b" }, "customer_id", /control/],
      [
        { ...EXAMPLE_ORDER, restaurant_id: "r\u001b[31m" },
        "restaurant_id",
        /control/,
      ],
      [{ ...EXAMPLE_ORDER, items: ["ok", "x\u0085y"] }, "items.1", /control/],
      [
        { ...EXAMPLE_ORDER, customer_id: "\ud800x" },
        "customer_id",
        /well-formed/,
      ],
      [{ ...EXAMPLE_ORDER, items: ["x\udfff"] }, "items.0", /well-formed/],
    ];
    for (const [body, field, message] of cases) {
      const problem = await assertProblem(
        await post(system, JSON.stringify(body)),
        422,
      );
      const errors = problem.errors as Array<
        { field: string; message: string }
      >;
      assert.equal(errors[0]?.field, field);
      assert.match(errors[0]!.message, message);
    }
    assert.equal((await system.store.list({ limit: 10 })).orders.length, 0);
    const awkward = {
      customer_id: "🍔\u2028c",
      restaurant_id: "Cafe\u0301",
      items: ["\u202Eevil", "tab-free\u00A0item"],
    };
    const accepted = await post(system, JSON.stringify(awkward));
    assert.equal(accepted.status, 201);
    const order = await accepted.json();
    assert.deepEqual(
      [order.customer_id, order.restaurant_id, order.items],
      [awkward.customer_id, awkward.restaurant_id, awkward.items],
    );
  },
);

withSystem(
  "POST /orders with Prefer: return=minimal answers 201 with Location and no body (RFC 7240), and the order exists",
  async (system) => {
    for (
      const prefer of [
        "return=minimal",
        "respond-async, RETURN = minimal",
        "return=minimal; foo=bar",
      ]
    ) {
      const response = await post(system, JSON.stringify(EXAMPLE_ORDER), {
        ...JSON_HEADERS,
        prefer,
      });
      assert.equal(response.status, 201, prefer);
      assert.equal(
        response.headers.get("preference-applied"),
        "return=minimal",
      );
      assert.equal(await response.text(), "");
      const location = response.headers.get("location") ?? "";
      assert.match(location, /^\/orders\/ORD-/);
      const read = await system.app.request(location);
      assert.equal((await read.json()).status, "pending");
    }
    const full = await post(system, JSON.stringify(EXAMPLE_ORDER), {
      ...JSON_HEADERS,
      prefer: "return=representation",
    });
    assert.equal(full.status, 201);
    assert.equal(full.headers.get("preference-applied"), null);
    assert.equal((await full.json()).status, "pending");
  },
);

withSystem(
  "POST /orders enforces the limits on ids and items",
  async (system) => {
    const cases = [
      { ...EXAMPLE_ORDER, customer_id: "c".repeat(65) },
      { ...EXAMPLE_ORDER, restaurant_id: "   " },
      { ...EXAMPLE_ORDER, items: [] },
      { ...EXAMPLE_ORDER, items: Array.from({ length: 101 }, () => "x") },
      { ...EXAMPLE_ORDER, items: ["x".repeat(201)] },
      [EXAMPLE_ORDER],
      null,
    ];
    for (const body of cases) {
      await assertProblem(
        await post(system, JSON.stringify(body)),
        422,
      );
    }
    const edge = {
      customer_id: "c".repeat(64),
      restaurant_id: "r",
      items: Array.from({ length: 100 }, () => "y".repeat(200)),
    };
    const accepted = await post(system, JSON.stringify(edge));
    assert.equal(accepted.status, 201);
    await accepted.body?.cancel();
  },
);

withSystem(
  "POST /orders answers 503 with Retry-After when the queue is full, and stores nothing",
  async (system) => {
    const first = await post(system, JSON.stringify(EXAMPLE_ORDER));
    assert.equal(first.status, 201);
    await first.body?.cancel();
    const full = await post(system, JSON.stringify(EXAMPLE_ORDER));
    await assertProblem(full, 503);
    assert.match(full.headers.get("retry-after") ?? "", /^\d+$/);
    assert.equal((await system.store.list({ limit: 10 })).orders.length, 1);
  },
  { queueCapacity: 1 },
);

withSystem(
  "POST /orders answers 503 when the store is full of unfinished orders",
  async (system) => {
    const first = await post(system, JSON.stringify(EXAMPLE_ORDER));
    assert.equal(first.status, 201);
    await first.body?.cancel();
    const problem = await assertProblem(
      await post(system, JSON.stringify(EXAMPLE_ORDER)),
      503,
    );
    assert.match(String(problem.type), /store-full/);
  },
  { store: new MemoryStore({ maxOrders: 1 }) },
);

withSystem("HEAD works wherever GET does", async (system) => {
  const response = await system.app.request("/health", { method: "HEAD" });
  assert.equal(response.status, 200);
  assert.equal(await response.text(), "");
});

withSystem(
  "Idempotency-Key: a repeat answers 200 with the order that key created; another body answers 422",
  async (system) => {
    const headers = { ...JSON_HEADERS, "idempotency-key": "abc-123" };
    const first = await post(system, JSON.stringify(EXAMPLE_ORDER), headers);
    assert.equal(first.status, 201);
    const original = await first.json();
    const again = await post(system, JSON.stringify(EXAMPLE_ORDER), headers);
    assert.equal(again.status, 200);
    assert.equal(again.headers.get("idempotent-replayed"), "true");
    assert.equal((await again.json()).id, original.id);
    const other = await post(
      system,
      JSON.stringify({ ...EXAMPLE_ORDER, items: ["soup"] }),
      headers,
    );
    await assertProblem(other, 422);
    assert.equal((await system.store.list({ limit: 10 })).orders.length, 1);
  },
);

withSystem(
  "Idempotency-Key: a replay answers the order as it is now, with Location, not a copy of the first answer",
  async (system) => {
    const headers = { ...JSON_HEADERS, "idempotency-key": "progress-1" };
    const first = await post(system, JSON.stringify(EXAMPLE_ORDER), headers);
    const original = await first.json();
    assert.equal(original.status, "pending");
    system.pool.start();
    await waitForStatus(system.store, original.id, ["completed"]);
    const again = await post(system, JSON.stringify(EXAMPLE_ORDER), headers);
    assert.equal(again.status, 200);
    assert.equal(again.headers.get("location"), `/orders/${original.id}`);
    const replayed = await again.json();
    assert.equal(replayed.id, original.id);
    assert.equal(replayed.status, "completed");
  },
);

withSystem(
  "Idempotency-Key: concurrent requests with one key create exactly one order",
  async (system) => {
    const headers = { ...JSON_HEADERS, "idempotency-key": "same-key" };
    const responses = await Promise.all(
      Array.from(
        { length: 20 },
        () => post(system, JSON.stringify(EXAMPLE_ORDER), headers),
      ),
    );
    const statuses = responses.map((response) => response.status).sort();
    assert.deepEqual(statuses, [...Array(19).fill(200), 201]);
    const ids = new Set(
      await Promise.all(
        responses.map(async (response) => (await response.json()).id),
      ),
    );
    assert.equal(ids.size, 1);
  },
);

withSystem(
  "Idempotency-Key longer than 255 characters answers 400",
  async (system) => {
    const headers = { ...JSON_HEADERS, "idempotency-key": "k".repeat(256) };
    await assertProblem(
      await post(system, JSON.stringify(EXAMPLE_ORDER), headers),
      400,
    );
  },
);

withSystem("GET /orders/{id} answers the order, or 404", async (system) => {
  const created = await (await post(system, JSON.stringify(EXAMPLE_ORDER)))
    .json();
  const found = await system.app.request(`/orders/${created.id}`);
  assert.equal(found.status, 200);
  assert.equal((await found.json()).id, created.id);
  await assertProblem(
    await system.app.request("/orders/ORD-00000000000000000000000000"),
    404,
  );
});

withSystem(
  "GET /orders is an array, oldest first, paged by a Link header that fetches the next page",
  async (system) => {
    const ids: string[] = [];
    for (let index = 0; index < 5; index++) {
      ids.push(
        (await (await post(system, JSON.stringify(EXAMPLE_ORDER))).json()).id,
      );
    }
    const seen: string[] = [];
    let url: string | undefined = "/orders?limit=2";
    let pages = 0;
    while (url) {
      const response = await system.app.request(url);
      assert.equal(response.status, 200);
      const page = await response.json();
      assert.ok(Array.isArray(page));
      seen.push(...page.map((order: { id: string }) => order.id));
      const link = response.headers.get("link");
      url = link ? /^<([^>]+)>; rel="next"$/.exec(link)?.[1] : undefined;
      pages++;
    }
    assert.deepEqual(seen, ids);
    assert.equal(pages, 3);
  },
);

withSystem(
  "GET /orders filters by status and defaults to 100 per page",
  async (system) => {
    const ids: string[] = [];
    for (let index = 0; index < 103; index++) {
      ids.push(
        (await (await post(system, JSON.stringify(EXAMPLE_ORDER))).json()).id,
      );
    }
    await system.app.request(`/orders/${ids[3]}/cancel`, { method: "POST" });
    const all = await system.app.request("/orders");
    assert.equal((await all.json()).length, 100);
    assert.match(all.headers.get("link") ?? "", /rel="next"/);
    const cancelled = await system.app.request("/orders?status=cancelled");
    assert.deepEqual(
      (await cancelled.json()).map((order: { id: string }) => order.id),
      [ids[3]],
    );
    assert.equal(cancelled.headers.get("link"), null);
  },
  { queueCapacity: 200 },
);

withSystem(
  "GET /orders finds orders by customer, restaurant and creation time, and its next-page links keep every filter",
  async (system) => {
    const made: Array<{ id: string; customer_id: string; created_at: string }> =
      [];
    for (let index = 0; index < 9; index++) {
      if (index === 3 || index === 6) {
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      const response = await post(
        system,
        JSON.stringify({
          ...EXAMPLE_ORDER,
          customer_id: index % 3 === 0 ? "c_findme" : "c_other",
          restaurant_id: index % 2 === 0 ? "r_even" : "r_odd",
        }),
      );
      made.push(await response.json());
    }
    const listAll = async (query: string) => {
      const ids: string[] = [];
      let next: string | undefined = `/orders?limit=1&${query}`;
      while (next !== undefined) {
        const response: Response = await system.app.request(next);
        assert.equal(response.status, 200, next);
        ids.push(...(await response.json()).map((o: { id: string }) => o.id));
        const link = response.headers.get("link");
        next = link ? /<([^>]+)>; rel="next"/.exec(link)![1] : undefined;
        if (next) {
          for (const part of query.split("&")) assert.ok(next.includes(part));
        }
      }
      return ids;
    };
    const ids = (keep: (index: number) => boolean) =>
      made.filter((_, index) => keep(index)).map((order) => order.id);
    assert.deepEqual(
      await listAll("customer_id=c_findme"),
      ids((i) => i % 3 === 0),
    );
    assert.deepEqual(
      await listAll("customer_id=c_findme&restaurant_id=r_even"),
      ids((i) => i % 6 === 0),
    );
    const third = encodeURIComponent(made[6]!.created_at);
    const second = encodeURIComponent(made[3]!.created_at);
    assert.deepEqual(
      await listAll(`created_after=${second}&created_before=${third}`),
      ids((i) => i >= 3 && i < 6),
    );
    // Another offset names the same instant.
    const local = new Date(Date.parse(made[3]!.created_at) + 3_600_000)
      .toISOString().replace("Z", "+01:00");
    assert.deepEqual(
      await listAll(
        `restaurant_id=r_odd&created_after=${encodeURIComponent(local)}`,
      ),
      ids((i) => i >= 3 && i % 2 === 1),
    );
  },
  { queueCapacity: 200 },
);

withSystem(
  "GET /orders answers 400 for a bad query parameter",
  async (system) => {
    for (
      const query of [
        "limit=0",
        "limit=1001",
        "limit=abc",
        "limit=1&limit=2",
        "status=shipped",
        "cursor=not-a-cursor",
        "colour=blue",
        "customer_id=",
        `customer_id=${"c".repeat(65)}`,
        "created_after=yesterday",
        "created_after=2026-12-07",
        "created_after=2026-12-07T10:00:00",
        "created_before=2026-13-45T10:00:00Z",
      ]
    ) {
      await assertProblem(await system.app.request(`/orders?${query}`), 400);
    }
  },
);

withSystem(
  "GET /orders words a repeated or unknown parameter for the client, and POST an unknown field",
  async (system) => {
    const messageFor = async (response: Response) => {
      const problem = await assertProblem(response, response.status);
      const [error] = problem.errors as Array<
        { field: string; message: string }
      >;
      return `${error?.field}: ${error?.message}`;
    };
    assert.equal(
      await messageFor(await system.app.request("/orders?limit=1&limit=2")),
      "limit: limit may be given only once",
    );
    assert.equal(
      await messageFor(await system.app.request("/orders?colour=blue")),
      "colour: colour is not a query parameter of GET /orders, which takes limit, status, customer_id, restaurant_id, created_after, created_before and cursor",
    );
    assert.equal(
      await messageFor(
        await post(system, JSON.stringify({ ...EXAMPLE_ORDER, id: "x" })),
      ),
      "id: id is not accepted: an order is sent as customer_id, restaurant_id and items only",
    );
  },
);

withSystem(
  "POST /orders/{id}/cancel cancels a pending order at once",
  async (system) => {
    const created = await (await post(system, JSON.stringify(EXAMPLE_ORDER)))
      .json();
    const response = await system.app.request(`/orders/${created.id}/cancel`, {
      method: "POST",
    });
    assert.equal(response.status, 200);
    const body = await response.json();
    assert.equal(body.status, "cancelled");
    assert.equal(body.cancellation, "done");
    // A second cancel of a finished order is a conflict.
    await assertProblem(
      await system.app.request(`/orders/${created.id}/cancel`, {
        method: "POST",
      }),
      409,
    );
    await assertProblem(
      await system.app.request(
        "/orders/ORD-00000000000000000000000000/cancel",
        { method: "POST" },
      ),
      404,
    );
  },
);

{
  const started = Promise.withResolvers<void>();
  const blockUntilAborted: StepRunner = (_step, _order, signal) => {
    started.resolve();
    return new Promise((_, reject) =>
      signal.addEventListener("abort", () => reject(signal.reason))
    );
  };
  withSystem(
    "POST /orders/{id}/cancel answers 202 for a processing order, which stops at its step boundary",
    async (system) => {
      system.pool.start();
      const created = await (await post(system, JSON.stringify(EXAMPLE_ORDER)))
        .json();
      await started.promise;
      const response = await system.app.request(
        `/orders/${created.id}/cancel`,
        { method: "POST" },
      );
      assert.equal(response.status, 202);
      const body = await response.json();
      assert.equal(body.status, "processing");
      assert.equal(body.cancel_requested, true);
      assert.equal(body.cancellation, "at_next_step_boundary");
      const final = await waitForStatus(system.store, created.id, [
        "cancelled",
      ]);
      assert.equal(final.status, "cancelled");
    },
    { runStep: blockUntilAborted },
  );
}

withSystem("a completed order cannot be cancelled: 409", async (system) => {
  system.pool.start();
  const created = await (await post(system, JSON.stringify(EXAMPLE_ORDER)))
    .json();
  await waitForStatus(system.store, created.id, ["completed"]);
  const problem = await assertProblem(
    await system.app.request(`/orders/${created.id}/cancel`, {
      method: "POST",
    }),
    409,
  );
  assert.equal(problem.order_status, "completed");
});

withSystem(
  "GET /health is 200; GET /ready turns 503 when draining, and so do new orders",
  async (system) => {
    const health = await system.app.request("/health");
    assert.equal(health.status, 200);
    assert.deepEqual(await health.json(), {
      status: "ok",
      processing: "running",
    });
    assert.equal((await system.app.request("/ready")).status, 200);
    await system.service.stopAccepting();
    await assertProblem(await system.app.request("/ready"), 503);
    await assertProblem(await post(system, JSON.stringify(EXAMPLE_ORDER)), 503);
    assert.equal((await system.app.request("/health")).status, 200);
  },
);

Deno.test("GET /ready answers 503 while the store refuses writes, and 200 once it takes them again", async () => {
  const { store, control } = refusingStore();
  const system = testSystem({ store });
  try {
    control.refusing = true;
    const refused = await assertProblem(
      await post(system, JSON.stringify(EXAMPLE_ORDER)),
      503,
    );
    assert.match(String(refused.type), /store-unavailable/);
    const ready = await assertProblem(await system.app.request("/ready"), 503);
    assert.match(String(ready.type), /store-unavailable/);
    control.refusing = false;
    const created = await post(system, JSON.stringify(EXAMPLE_ORDER));
    assert.equal(created.status, 201);
    await created.body?.cancel();
    const again = await system.app.request("/ready");
    assert.equal(again.status, 200);
    await again.body?.cancel();
  } finally {
    await drainSystem(system);
  }
});

for (const apiKeys of [[], ["k".repeat(20)]]) {
  withSystem(
    `trailing slashes, unknown assets and inherited names answer 404, never 405 or 500 (${
      apiKeys.length ? "with" : "without"
    } API keys)`,
    async (system) => {
      const paths = [
        "/orders/",
        "/health/",
        "/ready/",
        "/docs/",
        "/openapi.json/",
        "/docs/assets/__proto__",
        "/docs/assets/constructor",
        "/docs/assets/toString",
        "/docs/assets/hasOwnProperty",
        "/docs/assets/valueOf",
        "/docs/assets/nothing.js",
      ];
      for (const path of paths) {
        const response = await system.app.request(path);
        // With keys, a path outside the open ones asks for a key first.
        const expected = apiKeys.length ? [401, 404] : [404];
        assert.ok(
          expected.includes(response.status),
          `${path}: ${response.status}`,
        );
        assert.equal(response.headers.get("allow"), null, path);
        await assertProblem(response, response.status);
      }
    },
    { apiKeys },
  );
}

withSystem(
  "an unknown route answers 404 and a wrong method 405 with Allow, both problem+json",
  async (system) => {
    await assertProblem(await system.app.request("/nothing-here"), 404);
    const wrong = await system.app.request("/orders", { method: "DELETE" });
    await assertProblem(wrong, 405);
    assert.equal(wrong.headers.get("allow"), "GET, HEAD, POST");
    const cancel = await system.app.request("/orders/ORD-1/cancel", {
      method: "GET",
    });
    await assertProblem(cancel, 405);
    assert.equal(cancel.headers.get("allow"), "POST");
    const health = await system.app.request("/health", { method: "POST" });
    await assertProblem(health, 405);
  },
);

{
  // Payment fails while `paymentDown`, as a provider that is down would.
  let paymentDown = true;
  const flakyPayment: StepRunner = (step) =>
    step === "payment" && paymentDown
      ? Promise.reject(new Error("payment provider unavailable"))
      : Promise.resolve();
  withSystem(
    "POST /orders/{id}/retry puts a failed order through again: pending with fresh attempts, the failure kept in its timeline, then it completes from the step that failed; 409 for any other status, 404 for none",
    async (system) => {
      system.pool.start();
      // As the service runs it: the claimer queues unclaimed work.
      system.claimer.start();
      const created = await (await post(system, JSON.stringify(EXAMPLE_ORDER)))
        .json();
      const failed = await waitForStatus(system.store, created.id, ["failed"]);
      assert.equal(failed.attempts, 2);
      assert.equal(failed.failure_reason, "payment provider unavailable");

      paymentDown = false;
      const response = await system.app.request(
        `/orders/${created.id}/retry`,
        { method: "POST" },
      );
      assert.equal(response.status, 200);
      const retried = await response.json();
      assert.equal(retried.status, "pending");
      assert.equal(retried.attempts, 0);
      assert.equal(retried.failure_reason, null);
      const entry = retried.timeline.at(-2);
      assert.equal(entry.type, "retried");
      assert.equal(entry.attempt, 2);
      assert.equal(entry.reason, "payment provider unavailable");
      assert.deepEqual(retried.timeline.at(-1).status, "pending");

      const done = await waitForStatus(system.store, created.id, [
        "completed",
      ]);
      assert.equal(done.attempts, 1);
      // The confirmation that had succeeded is not done again.
      const confirmations = done.timeline.filter((e) =>
        e.type === "step_finished" && e.step === "restaurant_confirmation"
      );
      assert.equal(confirmations.length, 1);

      const again = await system.app.request(`/orders/${created.id}/retry`, {
        method: "POST",
      });
      assert.equal(again.status, 409);
      assert.equal(
        again.headers.get("content-type"),
        "application/problem+json",
      );
      assert.equal((await again.json()).order_status, "completed");
      const none = await system.app.request(
        `/orders/ORD-01JD0000AB0CCCCCCCCCCCCCCC/retry`,
        { method: "POST" },
      );
      assert.equal(none.status, 404);
      await none.body?.cancel();
      await system.claimer.stop();
    },
    { runStep: flakyPayment, maxAttempts: 2 },
  );
}
