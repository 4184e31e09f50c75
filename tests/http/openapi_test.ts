import assert from "node:assert/strict";
import {
  cancelledOrderSchema,
  healthSchema,
  orderSchema,
  problemSchema,
  readySchema,
} from "../../lib/http/schemas.ts";
import { drainSystem, EXAMPLE_ORDER, testSystem } from "../helpers.ts";

type Operations = Record<
  string,
  { responses: Record<string, unknown>; parameters?: Array<{ name: string }> }
>;

async function documentOf(system: ReturnType<typeof testSystem>) {
  const response = await system.app.request("/openapi.json");
  assert.equal(response.status, 200);
  return await response.json() as {
    openapi: string;
    paths: Record<string, Operations>;
  };
}

Deno.test("the OpenAPI document describes exactly the routes that exist", async () => {
  for (
    const options of [{}, { apiKeys: ["key-0123456789abcdef"] }, {
      metrics: false,
    }]
  ) {
    const system = testSystem(options);
    try {
      const document = await documentOf(system);
      assert.equal(document.openapi, "3.1.0");
      const documented = new Set<string>();
      for (const [path, operations] of Object.entries(document.paths)) {
        for (const method of Object.keys(operations)) {
          documented.add(`${method.toUpperCase()} ${path}`);
        }
      }
      const routed = new Set(
        system.app.routes
          .filter((route) => route.method !== "ALL")
          .map((route) =>
            `${route.method} ${route.path.replace(/:(\w+)/g, "{$1}")}`
          ),
      );
      assert.deepEqual(
        [...routed].filter((route) => !documented.has(route)),
        [],
        "routes without a spec",
      );
      assert.deepEqual(
        [...documented].filter((route) => !routed.has(route)),
        [],
        "specs without a route",
      );
    } finally {
      await drainSystem(system);
    }
  }
});

Deno.test("the OpenAPI document lists every status, header and schema a client needs", async () => {
  const system = testSystem({ apiKeys: ["key-0123456789abcdef"] });
  try {
    const document = await documentOf(system);
    const create = document.paths["/orders"]!.post!;
    for (
      const status of [
        "200",
        "201",
        "400",
        "401",
        "408",
        "413",
        "415",
        "422",
        "503",
      ]
    ) {
      assert.ok(status in create.responses, `POST /orders lacks ${status}`);
    }
    assert.deepEqual(
      Object.keys(document.paths["/orders/{id}/cancel"]!.post!.responses)
        .sort(),
      [
        "200",
        "202",
        "401",
        "404",
        "409",
        "503",
      ],
    );
    const text = JSON.stringify(document);
    for (
      const header of [
        "Idempotency-Key",
        "Retry-After",
        "Link",
        "Location",
        "Last-Event-ID",
      ]
    ) {
      assert.ok(
        text.includes(`"${header}"`),
        `the document does not mention ${header}`,
      );
    }
    assert.ok(text.includes("application/problem+json"));
    assert.ok(text.includes('"scheme":"bearer"'));
  } finally {
    await drainSystem(system);
  }
});

Deno.test("real responses match the schemas the document is generated from", async () => {
  const system = testSystem();
  try {
    system.pool.start();
    const created = await system.app.request("/orders", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(EXAMPLE_ORDER),
    });
    const order = orderSchema.parse(await created.json());
    const cancel = await system.app.request(`/orders/${order.id}/cancel`, {
      method: "POST",
    });
    if (cancel.status === 409) problemSchema.parse(await cancel.json());
    else cancelledOrderSchema.parse(await cancel.json());
    await drainSystem(system);
    const list = await system.app.request("/orders");
    for (const item of await list.json()) orderSchema.parse(item);
    problemSchema.parse(
      await (await system.app.request("/orders/nope")).json(),
    );
    const invalid = await system.app.request("/orders", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    assert.ok(problemSchema.parse(await invalid.json()).errors!.length > 0);
    healthSchema.parse(await (await system.app.request("/health")).json());
    const ready = await system.app.request("/ready");
    problemSchema.parse(await ready.json()); // drained: 503 problem
    assert.equal(ready.status, 503);
  } finally {
    await drainSystem(system);
  }
});

Deno.test("GET /ready's 200 body matches its schema", async () => {
  const system = testSystem();
  try {
    readySchema.parse(await (await system.app.request("/ready")).json());
  } finally {
    await drainSystem(system);
  }
});

Deno.test("GET /docs serves a page whose scripts and styles come from this service only", async () => {
  const system = testSystem();
  try {
    const page = await system.app.request("/docs");
    assert.equal(page.status, 200);
    assert.match(
      page.headers.get("content-security-policy") ?? "",
      /default-src 'self'/,
    );
    const html = await page.text();
    const references = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((
      match,
    ) => match[1]!);
    assert.ok(references.length >= 3);
    for (const reference of references) {
      assert.ok(
        reference.startsWith("/") || reference.startsWith("data:"),
        `external reference ${reference}`,
      );
      if (!reference.startsWith("/")) continue;
      const asset = await system.app.request(reference);
      assert.equal(asset.status, 200, reference);
      assert.ok((await asset.text()).length > 0);
    }
  } finally {
    await drainSystem(system);
  }
});

Deno.test("with API keys, an operation documented as secured answers 401 without a key and documents it; one documented open does not", async () => {
  const system = testSystem({ apiKeys: ["key-0123456789abcdef"] });
  try {
    const document = await documentOf(system) as unknown as {
      paths: Record<
        string,
        Record<string, { security?: unknown[]; responses: object }>
      >;
    };
    for (const [path, operations] of Object.entries(document.paths)) {
      for (const [method, operation] of Object.entries(operations)) {
        const url = path
          .replace("{id}", "ORD-00000000000000000000000000")
          .replace("{file}", "init.js");
        const response = await system.app.request(url, {
          method: method.toUpperCase(),
        });
        await response.body?.cancel();
        const secured = (operation.security ?? []).length > 0;
        assert.equal(
          response.status === 401,
          secured,
          `${method} ${path}: ${response.status}, documented ${
            secured ? "secured" : "open"
          }`,
        );
        if (secured) {
          assert.ok("401" in operation.responses, `${method} ${path} 401`);
        }
      }
    }
  } finally {
    await drainSystem(system);
  }
});

Deno.test("the OpenAPI document gives every time the date-time format and counts no fewer than zero attempts", async () => {
  const system = testSystem();
  try {
    const response = await system.app.request("/openapi.json");
    const document = await response.json();
    const order = document.components.schemas.Order.properties;
    assert.equal(order.created_at.format, "date-time");
    assert.equal(order.updated_at.format, "date-time");
    assert.equal(order.attempts.minimum, 0);
    const entries = JSON.stringify(order.timeline);
    assert.ok(!entries.includes('"minimum":-9007199254740991'), entries);
    const times = [...entries.matchAll(/"at":\{[^}]*"format":"([^"]+)"/g)];
    assert.equal(times.length, 6, "one `at` for each kind of entry");
    assert.ok(times.every((match) => match[1] === "date-time"));
  } finally {
    await drainSystem(system);
  }
});
