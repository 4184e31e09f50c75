/**
 * order-service: reads the configuration and wires the parts together.
 *
 * @module
 */

import { getLogger } from "@logtape/logtape";
import {
  type Config,
  ConfigError,
  helpText,
  parseConfig,
  redactConfig,
  validateApiKeys,
} from "./lib/config.ts";
import { parseApiKeysFile } from "./lib/http/auth.ts";
import { checkPort, isListenError } from "./lib/http/server.ts";
import {
  configureLogging,
  LIFECYCLE_CATEGORY,
  LOG_CATEGORY,
} from "./lib/observe/logging.ts";
import {
  type RunningInstance,
  startInstance,
  StartUpError,
} from "./lib/instance.ts";
import { isolateCount, IsolateGroup } from "./lib/isolates.ts";
import type { OrderSummary } from "./lib/orders/stats.ts";

let config: Config;
try {
  const parsed = parseConfig(Deno.args, (name) => Deno.env.get(name));
  if (parsed === "help") {
    console.log(helpText());
    Deno.exit(0);
  }
  config = parsed;
  if (config.apiKeysFile !== undefined) {
    const source = `API_KEYS_FILE "${config.apiKeysFile}"`;
    let text: string;
    try {
      text = Deno.readTextFileSync(config.apiKeysFile);
    } catch (error) {
      throw new ConfigError(
        `Cannot read ${source}: ${(error as Error).message}`,
      );
    }
    const keys = parseApiKeysFile(text);
    validateApiKeys(keys, source);
    config.apiKeys = [...config.apiKeys, ...keys];
  }
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  console.error(`order-service: ${error.message}`);
  Deno.exit(2);
}

const closeLogging = await configureLogging(config.logLevel);
const logger = getLogger([LOG_CATEGORY]);
const lifecycle = getLogger([...LIFECYCLE_CATEGORY]);
lifecycle.info("Starting order-service", { config: redactConfig(config) });
if (config.apiKeys.length === 0 && !isLoopback(config.host)) {
  lifecycle.warning(
    "Listening on a non-loopback address without API keys: anyone who can reach it can create and cancel orders; set API_KEYS or API_KEYS_FILE",
    { host: config.host },
  );
}

/** Start-up cannot go on: say why in the log and on stderr, exit 2. */
async function stopStartUp(reason: string): Promise<never> {
  lifecycle.error("Cannot start: {reason}", { reason });
  await closeLogging();
  console.error(`order-service: ${reason}`);
  Deno.exit(2);
}

/** Logs where the process listens, once. */
function logListening(hostname: string, port: number, isolates: number) {
  lifecycle.info("Listening", {
    url: `http://${hostname}:${port}`,
    hostname,
    port,
    isolates,
    // A supervisor (or `deno task`) may stand between whoever started the
    // service and the process that serves: this is the one to signal.
    pid: Deno.pid,
  });
}

const isolates = isolateCount(config.parallel, (name) => Deno.env.get(name));
let drainAll: () => Promise<OrderSummary>;
if (isolates === 1) {
  let running!: RunningInstance; // assigned, or stopStartUp() exits
  try {
    running = await startInstance({
      config,
      logger,
      lifecycle,
      onListen: ({ hostname, port }) => logListening(hostname, port, 1),
    });
  } catch (error) {
    if (!(error instanceof StartUpError)) throw error;
    await stopStartUp(error.message);
  }
  drainAll = () => running.drain({ timeoutMs: config.shutdownTimeoutMs });
} else {
  // The isolates share the port (SO_REUSEPORT), and so would any other
  // process that sets it: bind once without it first, so that a port in
  // use stops start-up here, and PORT=0 becomes one port for all.
  let port = config.port;
  try {
    port = checkPort(config.host, port);
  } catch (error) {
    if (!isListenError(error)) throw error;
    await stopStartUp(
      `Cannot listen on ${config.host}:${config.port}: ${error.message}`,
    );
  }
  const group = new IsolateGroup({
    config: { ...config, port },
    count: isolates,
    lifecycle,
    onIsolateDeath: async (reason) => {
      // Its instance is gone: rather than answer for part of the process,
      // stop, so that a supervisor starts it again whole.
      lifecycle.error("An isolate stopped; exiting: {reason}", { reason });
      group.terminate();
      await closeLogging();
      Deno.exit(1);
    },
  });
  try {
    logListening(config.host, await group.start(), isolates);
  } catch (error) {
    group.terminate();
    await stopStartUp((error as Error).message);
  }
  drainAll = async () => {
    const summary = await group.drain(config.shutdownTimeoutMs);
    lifecycle.info("Shutdown complete", { event: "summary", ...summary });
    return summary;
  };
}

let draining = false;
async function onSignal(signal: Deno.Signal): Promise<void> {
  if (draining) {
    lifecycle.warning("Second signal: exiting at once", { signal });
    await closeLogging();
    Deno.exit(1);
  }
  draining = true;
  lifecycle.info("Signal received; shutting down", { signal });
  await drainAll();
  await closeLogging();
  Deno.exit(0);
}
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(signal, () => void onSignal(signal));
}

function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\./.test(host);
}
