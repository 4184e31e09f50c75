/**
 * OpenTelemetry as docs/operations.md turns it on: the service's request spans,
 * exported by Deno over OTLP to a collector played by this test, are named
 * by route pattern, never by raw path.
 */

import assert from "node:assert/strict";
import { postOrder } from "./load.ts";
import { startService } from "./service_process.ts";

Deno.test("with OTEL_DENO=true, request spans are named by method and route pattern and carry http.route", async () => {
  const spans: Array<{ name: string; route: string | undefined }> = [];
  const collector = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    async (request) => {
      const body = await request.json().catch(() => ({}));
      if (new URL(request.url).pathname === "/v1/traces") {
        for (const resource of body.resourceSpans ?? []) {
          for (const scope of resource.scopeSpans ?? []) {
            for (const span of scope.spans ?? []) {
              const route = (span.attributes ?? []).find((
                attribute: { key: string },
              ) => attribute.key === "http.route")?.value?.stringValue;
              spans.push({ name: span.name, route });
            }
          }
        }
      }
      return Response.json({});
    },
  );
  try {
    const service = await startService({
      LATENCY_SCALE: "0",
      OTEL_DENO: "true",
      OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${collector.addr.port}`,
    });
    const created = await (await postOrder(service.url)).json();
    await (await fetch(`${service.url}/orders/${created.id}`)).body?.cancel();
    service.kill("SIGTERM");
    assert.equal((await service.status).code, 0);
    const names = spans.map((span) => span.name);
    assert.ok(names.includes("POST /orders"), JSON.stringify(names));
    assert.ok(names.includes("GET /orders/:id"), JSON.stringify(names));
    assert.ok(!names.some((name) => name.includes("ORD-")));
    assert.equal(
      spans.find((span) => span.name === "GET /orders/:id")?.route,
      "/orders/:id",
    );
  } finally {
    await collector.shutdown();
  }
});
