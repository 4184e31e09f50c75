/**
 * Hostile input: whatever a client sends, the answer is a 4xx problem+json
 * (never a 500), nothing invalid creates an order, and the service stays
 * healthy. FUZZ_RUNS raises the number of cases (`deno task fuzz`).
 */

import assert from "node:assert/strict";
import { fc } from "../deps.ts";
import type { System } from "../../lib/system.ts";
import { drainSystem, EXAMPLE_ORDER, testSystem } from "../helpers.ts";

const RUNS = Number(Deno.env.get("FUZZ_RUNS") ?? 150);

/** Sends one request and checks the universal promises about its answer. */
async function send(system: System, request: Request): Promise<Response> {
  const before = (await system.store.list({ limit: 1000 })).orders.length;
  const response = await system.app.request(request);
  const body = await response.text();
  const after = (await system.store.list({ limit: 1000 })).orders.length;
  assert.ok(
    response.status < 500 || response.status === 503,
    `answered ${response.status}: ${body}`,
  );
  if (response.status >= 400) {
    assert.equal(
      response.headers.get("content-type"),
      "application/problem+json",
      body,
    );
    if (request.method !== "HEAD") { // a HEAD answer has no body
      const problem = JSON.parse(body);
      assert.equal(problem.status, response.status);
    }
    assert.equal(after, before, "a refused request created an order");
  }
  if (response.status !== 201) {
    assert.equal(after, before, `a ${response.status} created an order`);
  }
  return response;
}

function fuzzTest(title: string, body: (system: System) => Promise<void>) {
  Deno.test(title, async () => {
    const system = testSystem({ queueCapacity: 100_000 });
    try {
      await body(system);
      const health = await system.app.request("/health");
      assert.equal(health.status, 200);
      await health.body?.cancel();
    } finally {
      await drainSystem(system);
    }
  });
}

const postJson = (body: BodyInit, contentType = "application/json") =>
  new Request("http://localhost/orders", {
    method: "POST",
    headers: { "content-type": contentType },
    body,
  });

/** JSON values of any shape, including the ones that break naive code. */
const hostileJson = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: "small" },
    fc.string(),
    fc.string({ unit: "grapheme", maxLength: 300 }),
    fc.double(),
    fc.integer(),
    fc.boolean(),
    fc.constant(null),
    fc.array(tie("value"), { maxLength: 5 }),
    fc.dictionary(
      fc.oneof(
        fc.string(),
        fc.constantFrom(
          "__proto__",
          "constructor",
          "prototype",
          "id",
          "status",
          "created_at",
        ),
      ),
      tie("value"),
      { maxKeys: 5 },
    ),
  ),
})).value;

/** Almost-valid orders: one field broken in one way. */
const nearlyValidOrder = fc.record({
  customer_id: fc.oneof(
    fc.string({ maxLength: 80 }),
    fc.integer(),
    fc.constant(null),
    fc.constant("   "),
  ),
  restaurant_id: fc.oneof(
    fc.string({ maxLength: 80 }),
    fc.array(fc.string()),
    fc.boolean(),
  ),
  items: fc.oneof(
    fc.array(fc.string({ maxLength: 250 }), { maxLength: 120 }),
    fc.array(fc.oneof(fc.integer(), fc.constant(null), fc.object()), {
      maxLength: 3,
    }),
    fc.string(),
  ),
}, { requiredKeys: [] });

fuzzTest(
  "fuzz: arbitrary JSON bodies never cause a 5xx and never create an invalid order",
  async (system) => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(hostileJson, nearlyValidOrder),
        async (value) => {
          const response = await send(system, postJson(JSON.stringify(value)));
          assert.ok(
            [201, 400, 413, 422].includes(response.status),
            `status ${response.status}`,
          );
          if (response.status === 201) {
            // Only a body that obeys every rule may create an order.
            const order = value as {
              customer_id: string;
              restaurant_id: string;
              items: string[];
            };
            assert.equal(typeof order.customer_id, "string");
            assert.ok(
              Array.isArray(order.items) && order.items.length >= 1 &&
                order.items.length <= 100,
            );
            assert.deepEqual(Object.keys(order).sort(), [
              "customer_id",
              "items",
              "restaurant_id",
            ]);
          }
        },
      ),
      { numRuns: RUNS },
    );
  },
);

fuzzTest(
  "fuzz: random bytes, including invalid UTF-8, answer 400 or 415, never repaired",
  async (system) => {
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ minLength: 0, maxLength: 300 }),
        async (bytes) => {
          const response = await send(system, postJson(bytes));
          assert.ok(
            [201, 400, 422].includes(response.status),
            `status ${response.status}`,
          );
        },
      ),
      { numRuns: RUNS },
    );
    // A valid order with one byte made invalid UTF-8 is refused, not repaired.
    const bytes = new TextEncoder().encode(JSON.stringify(EXAMPLE_ORDER));
    bytes[20] = 0xc3; // a lead byte followed by an ASCII byte
    assert.equal((await send(system, postJson(bytes))).status, 400);
  },
);

fuzzTest(
  "fuzz: any content type other than JSON answers 415",
  async (system) => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.constantFrom(
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data",
            "application/jsonx",
            "",
          ),
          fc.stringMatching(/^[a-z]{1,10}\/[a-z.+-]{1,20}$/).filter((type) =>
            !/^application\/([\w.+-]+\+)?json$/.test(type)
          ),
        ),
        async (contentType) => {
          const response = await send(
            system,
            postJson(JSON.stringify(EXAMPLE_ORDER), contentType),
          );
          assert.equal(response.status, 415);
        },
      ),
      { numRuns: Math.min(RUNS, 100) },
    );
  },
);

fuzzTest(
  "fuzz: deeply nested JSON is refused without a crash",
  async (system) => {
    for (const depth of [100, 10_000, 30_000]) {
      const nested = "[".repeat(depth) + "]".repeat(depth);
      const response = await send(system, postJson(nested));
      assert.ok(
        [413, 422].includes(response.status),
        `depth ${depth}: ${response.status}`,
      );
      const objects = '{"a":'.repeat(depth) + "1" + "}".repeat(depth);
      const objectResponse = await send(system, postJson(objects));
      assert.ok([413, 422].includes(objectResponse.status));
    }
  },
);

fuzzTest("fuzz: huge strings and arrays answer 413 or 422", async (system) => {
  const cases = [
    { ...EXAMPLE_ORDER, customer_id: "x".repeat(60_000) },
    { ...EXAMPLE_ORDER, items: Array.from({ length: 20_000 }, () => "a") },
    { ...EXAMPLE_ORDER, items: ["y".repeat(1_000_000)] },
  ];
  for (const body of cases) {
    const response = await send(system, postJson(JSON.stringify(body)));
    assert.ok([413, 422].includes(response.status));
  }
});

fuzzTest(
  "fuzz: duplicate keys are refused, so no two parsers can disagree about an order",
  async (system) => {
    const body =
      '{"customer_id":"c_1","restaurant_id":"r_1","items":["a"],"customer_id":"c_2"}';
    const response = await send(system, postJson(body));
    assert.equal(response.status, 400);
    const nested =
      '{"customer_id":"c_1","restaurant_id":"r_1","items":["a"],"x":{"k":1,"k":2}}';
    assert.equal((await send(system, postJson(nested))).status, 400);
  },
);

fuzzTest(
  "fuzz: arbitrary paths, methods and headers never cause a 5xx",
  async (system) => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(
          "GET",
          "POST",
          "PUT",
          "DELETE",
          "PATCH",
          "OPTIONS",
          "HEAD",
        ),
        fc.oneof(
          fc.webPath(),
          fc.string().map((text) => "/orders/" + encodeURIComponent(text)),
          fc.constantFrom(
            "/orders/%",
            "/orders/%E0%A4%A",
            "/orders/..%2F..%2Fetc",
            "/orders?limit=%FF",
            "/orders?cursor=%00",
          ),
          fc.webQueryParameters().map((query) => `/orders?${query}`),
        ),
        fc.dictionary(
          fc.constantFrom(
            "idempotency-key",
            "content-type",
            "x-anything",
            "accept",
          ),
          fc.stringMatching(/^[\x20-\x7e]{0,300}$/),
          { maxKeys: 3 },
        ),
        async (method, path, headers) => {
          const hasBody = method === "POST" || method === "PUT" ||
            method === "PATCH";
          const request = new Request(
            `http://localhost${path.startsWith("/") ? path : "/" + path}`,
            {
              method,
              headers,
              ...(hasBody ? { body: JSON.stringify(EXAMPLE_ORDER) } : {}),
            },
          );
          await send(system, request);
        },
      ),
      { numRuns: RUNS },
    );
  },
);
