/**
 * The bare handler of the HTTP benchmarks, on its own so that `deno serve
 * --parallel` can run it on every core (`bench/baseline_server.ts` runs it
 * on one): read the body, answer a fixed JSON order.
 *
 * `HANDLER_WORK_US=N` makes each POST also spend N µs of the main thread
 * in JavaScript before it answers.
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
