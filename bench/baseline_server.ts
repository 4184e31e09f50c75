/**
 * The baseline for the HTTP benchmarks: a bare `Deno.serve` handler that
 * does the least an order endpoint must do — read the body, answer a fixed
 * JSON order — with no routing framework, validation, store or queue. The
 * service's throughput is reported as a ratio to this one's, measured in the
 * same run on the same machine.
 *
 * Usage: deno run --allow-net --allow-env bench/baseline_server.ts
 * (PORT, default 0; prints {"port": N} once listening), or, on every core,
 * `BASELINE_SERVE=1 deno serve --parallel --port N bench/baseline_server.ts`.
 *
 * `HANDLER_WORK_US=N` makes each POST also spend N µs of the main thread
 * in JavaScript before it answers: the bench's "work budget" rows use it to
 * show how much of a handler's own work a throughput ratio allows.
 */

const FIXED_ORDER = JSON.stringify({
  id: "ORD-01M8BGBGC1F9K2EZ5YN200HXAZ",
  customer_id: "c_12345",
  restaurant_id: "r_456",
  items: ["veggie_burger", "fries"],
  status: "pending",
  created_at: "2026-11-26T08:43:02.913Z",
  updated_at: "2026-11-26T08:43:02.913Z",
  attempts: 0,
  failure_reason: null,
  cancel_requested: false,
  timeline: [{
    at: "2026-11-26T08:43:02.913Z",
    type: "status",
    status: "pending",
  }],
});

const WORK_MS = Number(Deno.env.get("HANDLER_WORK_US") ?? 0) / 1000;

/** Keeps the thread busy for `ms`, as a handler's own work would. */
function work(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) { /* busy */ }
}

/** The bare handler: read the body, answer a fixed order. */
export async function handle(request: Request): Promise<Response> {
  if (request.method === "POST") {
    await request.arrayBuffer();
    if (WORK_MS > 0) work(WORK_MS);
    return new Response(FIXED_ORDER, {
      status: 201,
      headers: { "content-type": "application/json" },
    });
  }
  return new Response(FIXED_ORDER, {
    status: 200,
    headers: { "content-type": "application/json" },
  });
}

/** The same handler for `deno serve` (`--parallel`: one per core). */
export default { fetch: handle } satisfies Deno.ServeDefaultExport;

if (import.meta.main && !Deno.env.get("BASELINE_SERVE")) {
  const server = Deno.serve({
    port: Number(Deno.env.get("PORT") ?? 0),
    hostname: "127.0.0.1",
    onListen: ({ port }) => console.log(JSON.stringify({ port })),
  }, handle);
  Deno.addSignalListener("SIGTERM", () => server.shutdown());
}
