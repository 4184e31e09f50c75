/**
 * The baseline for the HTTP benchmarks: a bare `Deno.serve` handler that
 * does the least an order endpoint must do — read the body, answer a fixed
 * JSON order — with no routing framework, validation, store or queue. The
 * service's throughput is reported as a ratio to this one's, measured in the
 * same run on the same machine.
 *
 * Usage: deno run --allow-net --allow-env bench/baseline_server.ts
 * (PORT, default 0; prints {"port": N} once listening). On every core:
 * `deno serve --parallel --port N bench/baseline_handler.ts`.
 *
 * `HANDLER_WORK_US=N` makes each POST also spend N µs of the main thread
 * in JavaScript before it answers: the bench's "work budget" rows use it to
 * show how much of a handler's own work a throughput ratio allows.
 */

import { handle } from "./baseline_handler.ts";

const server = Deno.serve({
  port: Number(Deno.env.get("PORT") ?? 0),
  hostname: "127.0.0.1",
  onListen: ({ port }) => console.log(JSON.stringify({ port })),
}, handle);

Deno.addSignalListener("SIGTERM", () => server.shutdown());
