/**
 * Memory per finished order: pushes N orders through the real system
 * in-process (memory store, LATENCY_SCALE=0) and reports the RSS growth per
 * order after garbage collection. Run with --v8-flags=--expose-gc.
 *
 * Usage: deno run --v8-flags=--expose-gc -A bench/memory.ts [N]
 *        deno run -A bench/memory.ts N --no-gc   (RSS as V8 leaves it)
 * Prints one JSON line: {"orders", "rssBytesPerOrder", "heapBytesPerOrder"}.
 */

import { getLogger } from "@logtape/logtape";
import { MemoryStore } from "../lib/store/memory.ts";
import { createSystem } from "../lib/system.ts";

const noGc = Deno.args.includes("--no-gc");
const total = Number(Deno.args.find((arg) => /^\d+$/.test(arg)) ?? 1_000_000);
const batch = 1_000;
if (total % batch !== 0 || total < 2 * batch) {
  throw new RangeError(
    `N must be a multiple of ${batch}, at least ${2 * batch}`,
  );
}
const gc = (globalThis as { gc?: (options?: unknown) => void }).gc;
if (!gc && !noGc) throw new Error("Run with --v8-flags=--expose-gc");

function settle(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

async function measure() {
  if (noGc) {
    await settle();
    const usage = Deno.memoryUsage();
    return { rss: usage.rss, heap: usage.heapUsed };
  }
  for (let index = 0; index < 3; index++) {
    // A last-resort major GC compacts the heap and returns free pages, so
    // RSS shows what the orders retain rather than V8's spare capacity.
    gc!({ type: "major", execution: "sync", flavor: "last-resort" });
    await settle();
  }
  // V8 hands freed pages back to the OS from a background thread.
  await new Promise((resolve) => setTimeout(resolve, 500));
  const usage = Deno.memoryUsage();
  if (Deno.env.get("MEMORY_DEBUG")) console.error(JSON.stringify(usage));
  return { rss: usage.rss, heap: usage.heapUsed };
}

const store = new MemoryStore({ maxOrders: total });
const system = createSystem({
  store,
  coordination: store.coordination,
  logger: getLogger(["order-service-bench"]),
  workers: 5,
  queueCapacity: batch,
  latencyScale: 0,
  failureRate: 0,
  maxAttempts: 3,
});
system.pool.start();
// The first orders also page in code and grow fixed-size runtime buffers;
// measuring from after them counts only what each further order costs.
const warmUp = Math.min(50_000, Math.floor(total / 10));
let before = await measure();
for (let created = 0; created < total; created += batch) {
  if (created === warmUp) before = await measure();
  const count = Math.min(batch, total - created);
  await Promise.all(
    Array.from({ length: count }, (_, index) =>
      system.service.create({
        // Distinct ids per order, as real traffic has.
        customer_id: `c_${created + index}`,
        restaurant_id: `r_${(created + index) % 5000}`,
        items: ["veggie_burger", "fries"],
      })),
  );
  while (system.stats.summary().completed < created + count) await settle();
}
const after = await measure();
await system.service.stopAccepting();
await system.pool.done;
console.log(JSON.stringify({
  orders: total,
  rssBytesPerOrder: Math.round((after.rss - before.rss) / (total - warmUp)),
  heapBytesPerOrder: Math.round((after.heap - before.heap) / (total - warmUp)),
}));
