/**
 * order-service: reads the configuration and wires the parts together.
 *
 * @module
 */

import { getLogger } from "@logtape/logtape";
import { ConfigError, helpText, parseConfig } from "./lib/config.ts";
import {
  configureLogging,
  LIFECYCLE_CATEGORY,
  LOG_CATEGORY,
} from "./lib/logging.ts";
import { drain } from "./lib/shutdown.ts";
import { MemoryStore } from "./lib/store/memory.ts";
import { createSystem } from "./lib/system.ts";

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
const lifecycle = getLogger([...LIFECYCLE_CATEGORY]);
lifecycle.info("Starting order-service", { config: { ...config } });

const system = createSystem({
  ...config,
  store: new MemoryStore({ maxOrders: config.maxOrders }),
  logger,
});
system.pool.start();

const server = Deno.serve({
  port: config.port,
  hostname: config.host,
  onListen: ({ hostname, port }) =>
    lifecycle.info("Listening", {
      url: `http://${hostname}:${port}`,
      hostname,
      port,
    }),
}, system.app.fetch);

let draining = false;
async function onSignal(signal: Deno.Signal): Promise<void> {
  if (draining) {
    lifecycle.warning("Second signal: exiting at once", { signal });
    await closeLogging();
    Deno.exit(1);
  }
  draining = true;
  lifecycle.info("Signal received; shutting down", { signal });
  await drain({
    ...system,
    server,
    logger: lifecycle,
    timeoutMs: config.shutdownTimeoutMs,
  });
  await closeLogging();
  Deno.exit(0);
}
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(signal, () => void onSignal(signal));
}
