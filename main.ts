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
import { ResilientServer } from "./lib/http/server.ts";
import {
  configureLogging,
  LIFECYCLE_CATEGORY,
  LOG_CATEGORY,
} from "./lib/observe/logging.ts";
import { drain } from "./lib/shutdown.ts";
import { type OpenedStore, openStore } from "./lib/store/open.ts";
import { StoreOpenError, StoreUnavailableError } from "./lib/orders/errors.ts";
import { createSystem } from "./lib/system.ts";

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

let opened!: OpenedStore; // assigned, or stopStartUp() exits
let interrupted!: number;
try {
  opened = await openStore(config.store, config);
} catch (error) {
  // A store that cannot be opened: nothing can be promised, so stop with
  // the documented code.
  if (!(error instanceof StoreOpenError)) throw error;
  await stopStartUp(error.message);
}
const { store, coordination } = opened;
try {
  // Before any worker runs: orders a previous process (or, on a shared
  // store, a stopped instance) left mid-processing become pending again.
  interrupted = await coordination.rescue();
} catch (error) {
  // A store that refuses the recovery's writes (a full disk) can still be
  // read: come up, answer 503 to writes, and let the lease loop try the
  // recovery again until the store takes it.
  if (!(error instanceof StoreUnavailableError)) throw error;
  interrupted = 0;
  lifecycle.warning(
    "Cannot recover interrupted orders yet: {reason}; trying again while serving reads",
    { reason: error.message },
  );
}
if (interrupted > 0) {
  lifecycle.warning("Recovered interrupted orders", { interrupted });
}

const system = createSystem({
  store,
  coordination,
  storeKind: opened.kind,
  instanceId: opened.instanceId,
  logger,
  workers: config.workers,
  queueCapacity: config.queueCapacity,
  latencyScale: config.latencyScale,
  failureRate: config.failureRate,
  maxAttempts: config.maxAttempts,
  bodyLimits: { timeoutMs: config.bodyTimeoutMs },
  maxInFlight: config.maxInFlight,
  apiKeys: config.apiKeys,
  corsOrigins: config.corsOrigins,
  metrics: config.metrics,
  processMetrics: config.metrics,
  events: config.events,
  requestIds: config.requestIds,
  heartbeatMs: config.sseHeartbeatMs,
  leaseHeartbeatMs: config.leaseMs / 5,
});
try {
  const start = await system.feedStarted;
  // Once, at start; from here the dashboard counts from events. A shared
  // store's feed gives counts that match where its live events begin.
  if (start) system.dashboard.addExisting(start.counts, start.counted);
  else system.dashboard.addExisting(await store.countByStatus());
} catch (error) {
  await stopStartUp(
    `the store did not start its event feed or count: ${error}`,
  );
}
if (opened.instanceId !== undefined) {
  lifecycle.info("Registered as instance {instanceId}", {
    instanceId: opened.instanceId,
    leaseMs: config.leaseMs,
  });
}
system.pool.start();
// In the background, as the queue has room: every unclaimed pending order
// (left by an earlier process, rescued, or handed back by an instance).
system.claimer.start();

let server!: ResilientServer; // assigned, or stopStartUp() exits
try {
  server = new ResilientServer(system.app.fetch, {
    port: config.port,
    hostname: config.host,
    idleTimeoutMs: config.idleTimeoutMs,
    sharePort: config.reusePort,
    logger: lifecycle,
    onAcceptFailure: () => system.metrics?.recordAcceptFailure(),
    onListen: ({ hostname, port }) =>
      lifecycle.info("Listening", {
        url: `http://${hostname}:${port}`,
        hostname,
        port,
        // A supervisor (or `deno task`) may stand between whoever started
        // the service and the process that serves: this is the one to signal.
        pid: Deno.pid,
      }),
  });
} catch (error) {
  if (
    !(error instanceof Deno.errors.AddrInUse) &&
    !(error instanceof Deno.errors.AddrNotAvailable) &&
    !(error instanceof Deno.errors.PermissionDenied)
  ) throw error;
  await stopStartUp(
    `Cannot listen on ${config.host}:${config.port}: ${error.message}`,
  );
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

function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\./.test(host);
}
