/**
 * order-service: reads the configuration and wires the parts together.
 *
 * @module
 */

import { getLogger } from "@logtape/logtape";
import { Channel } from "./lib/channel.ts";
import { ConfigError, helpText, parseConfig } from "./lib/config.ts";
import { createApp } from "./lib/http/app.ts";
import { configureLogging, LOG_CATEGORY } from "./lib/logging.ts";
import { exponentialBackoff, OrderProcessor } from "./lib/order_processor.ts";
import { OrderService } from "./lib/order_service.ts";
import { drain } from "./lib/shutdown.ts";
import { OrderStats } from "./lib/stats.ts";
import { createSimulatedSteps } from "./lib/steps.ts";
import { MemoryStore } from "./lib/store/memory.ts";
import { WorkerPool } from "./lib/worker_pool.ts";

let parsed;
try {
  parsed = parseConfig(Deno.args, (name) => Deno.env.get(name));
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  console.error(`order-service: ${error.message}`);
  Deno.exit(2);
}
if (parsed === "help") {
  console.log(helpText());
  Deno.exit(0);
}
const config = parsed;

const closeLogging = await configureLogging(config.logLevel);
const logger = getLogger([LOG_CATEGORY]);
logger.info("Starting order-service", { config: { ...config } });

const store = new MemoryStore({ maxOrders: config.maxOrders });
const queue = new Channel<string>({ capacity: config.queueCapacity });
const stats = new OrderStats();
const processor = new OrderProcessor({
  store,
  stats,
  logger: logger.getChild("worker"),
  runStep: createSimulatedSteps({
    latencyScale: config.latencyScale,
    failureRate: config.failureRate,
  }),
  maxAttempts: config.maxAttempts,
  backoffMs: exponentialBackoff(1000 * config.latencyScale),
});
const service = new OrderService({ store, queue, stats, processor });
const pool = new WorkerPool<string>({
  receive: (options) => queue.receive(options),
  process: async (id, signal) => {
    await processor.process(id, signal);
  },
  concurrency: config.workers,
  onError: (error, id) =>
    logger.error("Processing order {orderId} failed unexpectedly: {error}", {
      orderId: id,
      error,
    }),
});
pool.start();

const app = createApp({ store, service, logger: logger.getChild("http") });
const server = Deno.serve({
  port: config.port,
  hostname: config.host,
  onListen: ({ hostname, port }) =>
    logger.info("Listening", {
      url: `http://${hostname}:${port}`,
      hostname,
      port,
    }),
}, app.fetch);

let draining = false;
async function onSignal(signal: Deno.Signal): Promise<void> {
  if (draining) {
    logger.warning("Second signal: exiting at once", { signal });
    await closeLogging();
    Deno.exit(1);
  }
  draining = true;
  logger.info("Signal received; shutting down", { signal });
  await drain({
    service,
    pool,
    server,
    store,
    stats,
    logger,
    timeoutMs: config.shutdownTimeoutMs,
  });
  await closeLogging();
  Deno.exit(0);
}
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(signal, () => void onSignal(signal));
}
