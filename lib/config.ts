/**
 * Configuration from command-line flags and environment variables; a flag
 * wins over its variable.
 *
 * @module
 */

import { parseArgs } from "node:util";
import {
  acceptedStores,
  integerIn,
  STORE_KINDS,
  type StoreKind,
  storeKindOf,
  type StoreSettings,
  storeSettings,
} from "./store/open.ts";

/** Log levels the service accepts. */
export const LOG_LEVELS = ["debug", "info", "warning", "error"] as const;

/**
 * The effective configuration: the service's settings, and those that the
 * kinds of store declare (`MAX_ORDERS`, `SQLITE_SYNCHRONOUS`, `PG_*`,
 * `INSTANCE_ID`, `LEASE_MS`), each read by its kind's `open`.
 */
export interface Config extends StoreSettings {
  port: number;
  host: string;
  workers: number;
  queueCapacity: number;
  latencyScale: number;
  failureRate: number;
  maxAttempts: number;
  shutdownTimeoutMs: number;
  logLevel: typeof LOG_LEVELS[number];
  /** `memory`, `sqlite:PATH`, or a `postgres://` / `postgresql://` URL. */
  store: string;
  /** Listen with SO_REUSEPORT, so that several processes share the port. */
  reusePort: boolean;
  /** Isolates serving the port, each a whole instance; `auto`: one per core. */
  parallel: number | "auto";
  maxInFlight: number;
  bodyTimeoutMs: number;
  /** How long a connection with no request in progress may stay open. */
  idleTimeoutMs: number;
  /** Accepted bearer tokens; empty: no authentication. */
  apiKeys: string[];
  /** A file of more keys, one per line (read by `main.ts`). */
  apiKeysFile: string | undefined;
  /** Origins allowed by CORS; empty: CORS off. */
  corsOrigins: string[];
  metrics: boolean;
  /** Order events (live streams, order metrics); off only to measure them. */
  events: boolean;
  /** X-Request-Id on every response; off only to measure it. */
  requestIds: boolean;
  sseHeartbeatMs: number;
  /** Webhooks may go to private, loopback and link-local addresses. */
  webhookAllowPrivate: boolean;
  /** Webhooks may go to `http:` URLs. */
  webhookAllowHttp: boolean;
  /** How long one webhook attempt may take. */
  webhookTimeoutMs: number;
  /** Scales the webhook retry schedule and the disabling window (tests). */
  webhookScheduleScale: number;
  /** How long a delivered webhook message is kept, in hours. */
  webhookRetentionHours: number;
}

/**
 * The configuration as it may be logged: keys replaced by their count, and
 * a database URL's password by `***`.
 */
export function redactConfig(
  config: Config,
): Omit<Config, "apiKeys"> & { apiKeys: string } {
  return {
    ...config,
    store: storeKindOf(config.store)?.redact(config.store) ?? config.store,
    apiKeys: `${config.apiKeys.length} key(s)`,
  };
}

const API_KEY = /^[A-Za-z0-9._~+/-]{16,256}=*$/;

/** A setting has a value it does not accept. */
export class ConfigError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

interface Setting<K extends keyof Config> {
  key: K;
  env: string;
  defaultValue: Config[K];
  accepts: string;
  description: string;
  parse: (raw: string) => Config[K] | undefined;
  /** Never echo the value in an error message. */
  secret?: boolean;
}

const integer = integerIn;

function decimal(min: number, max: number) {
  return (raw: string): number | undefined => {
    if (!/^[0-9]+(\.[0-9]+)?$/.test(raw)) return undefined;
    const value = Number(raw);
    return value >= min && value <= max ? value : undefined;
  };
}

function onOff(raw: string): boolean | undefined {
  return raw === "on" ? true : raw === "off" ? false : undefined;
}

function oneOf<T extends string>(values: readonly T[]) {
  return (raw: string): T | undefined =>
    (values as readonly string[]).includes(raw) ? raw as T : undefined;
}

/** Every setting, in the order `--help` lists them; the stores' from `kinds`. */
// deno-lint-ignore no-explicit-any
function settingsFor(kinds: readonly StoreKind[]): ReadonlyArray<Setting<any>> {
  return [
    {
      key: "port",
      env: "PORT",
      defaultValue: 8080,
      accepts: "an integer from 0 to 65535 (0 picks a free port)",
      description: "TCP port to listen on",
      parse: integer(0, 65535),
    },
    {
      key: "host",
      env: "HOST",
      defaultValue: "0.0.0.0",
      accepts: "a host name or IP address",
      description: "address to listen on",
      parse: (raw: string) =>
        /^[A-Za-z0-9.:_-]{1,253}$/.test(raw) ? raw : undefined,
    },
    {
      key: "workers",
      env: "WORKERS",
      defaultValue: 5,
      accepts: "an integer from 1 to 10000",
      description:
        "worker loops processing orders at once, in each isolate (see PARALLEL)",
      parse: integer(1, 10_000),
    },
    {
      key: "queueCapacity",
      env: "QUEUE_CAPACITY",
      defaultValue: 100,
      accepts: "an integer from 1 to 10000000",
      description:
        "orders waiting for a worker before POST /orders answers 503, in each isolate",
      parse: integer(1, 10_000_000),
    },
    {
      key: "latencyScale",
      env: "LATENCY_SCALE",
      defaultValue: 1,
      accepts: "a number from 0 to 1000",
      description: "multiplies every processing step's duration (0: no delay)",
      parse: decimal(0, 1000),
    },
    {
      key: "failureRate",
      env: "FAILURE_RATE",
      defaultValue: 0,
      accepts: "a number from 0 to 1",
      description: "probability that a processing step fails",
      parse: decimal(0, 1),
    },
    {
      key: "maxAttempts",
      env: "MAX_ATTEMPTS",
      defaultValue: 3,
      accepts: "an integer from 1 to 100",
      description: "processing attempts before an order fails",
      parse: integer(1, 100),
    },
    {
      key: "shutdownTimeoutMs",
      env: "SHUTDOWN_TIMEOUT_MS",
      defaultValue: 30_000,
      accepts: "an integer from 0 to 3600000",
      description: "how long shutdown waits for accepted orders to finish",
      parse: integer(0, 3_600_000),
    },
    {
      key: "logLevel",
      env: "LOG_LEVEL",
      defaultValue: "info",
      accepts: LOG_LEVELS.join(", "),
      description: "lowest level logged",
      parse: oneOf(LOG_LEVELS),
    },
    {
      key: "store",
      env: "STORE",
      defaultValue: "memory",
      accepts: acceptedStores(kinds),
      description:
        "where orders are kept: in memory, durably in a SQLite file, or in PostgreSQL",
      parse: (raw: string) => storeKindOf(raw, kinds) ? raw : undefined,
      secret: true, // a URL may hold a password
    },
    // Each kind of store's own, declared beside it in lib/store/.
    ...storeSettings(kinds),
    {
      key: "reusePort",
      env: "REUSE_PORT",
      defaultValue: false,
      accepts: "on or off",
      description:
        "let several processes listen on one port (Linux SO_REUSEPORT): run one per core on a shared PostgreSQL store",
      parse: onOff,
    },
    {
      key: "parallel",
      env: "PARALLEL",
      defaultValue: 1,
      accepts: "an integer from 1 to 64, or auto",
      description:
        "isolates serving the port in this process, each running the whole service; auto: one per core (DENO_JOBS if set)",
      parse: (raw: string) => raw === "auto" ? "auto" : integer(1, 64)(raw),
    },
    {
      key: "maxInFlight",
      env: "MAX_INFLIGHT",
      defaultValue: 1024,
      accepts: "an integer from 1 to 1000000",
      description:
        "requests handled at once before new ones get 503, in each isolate",
      parse: integer(1, 1_000_000),
    },
    {
      key: "bodyTimeoutMs",
      env: "BODY_TIMEOUT_MS",
      defaultValue: 10_000,
      accepts: "an integer from 1 to 600000",
      description:
        "how long a client may take to send a request body (then 408)",
      parse: integer(1, 600_000),
    },
    {
      key: "idleTimeoutMs",
      env: "IDLE_TIMEOUT_MS",
      defaultValue: 30_000,
      accepts: "an integer from 100 to 3600000",
      description:
        "longest life of a connection with no request in progress (idle keep-alive, or still sending headers)",
      parse: integer(100, 3_600_000),
    },
    {
      key: "apiKeys",
      env: "API_KEYS",
      defaultValue: [],
      accepts:
        "comma-separated keys of 16 to 256 characters from A-Z a-z 0-9 . _ ~ + / -",
      description:
        "API keys required as Authorization: Bearer <key> (default: none, open)",
      parse: (raw: string) => {
        const keys = raw.split(",").map((key) => key.trim()).filter((key) =>
          key !== ""
        );
        return keys.every((key) => API_KEY.test(key)) ? keys : undefined;
      },
      secret: true,
    },
    {
      key: "corsOrigins",
      env: "CORS_ORIGINS",
      defaultValue: [],
      accepts: "comma-separated origins such as https://ops.example.com",
      description:
        "browser origins allowed to call the API (default: none, CORS off)",
      parse: (raw: string) => {
        const origins = raw.split(",").map((origin) => origin.trim()).filter((
          origin,
        ) => origin !== "");
        return origins.every((origin) =>
            /^https?:\/\/[A-Za-z0-9.-]+(:\d{1,5})?$/.test(origin)
          )
          ? origins
          : undefined;
      },
    },
    {
      key: "metrics",
      env: "METRICS",
      defaultValue: true,
      accepts: "on or off",
      description: "Prometheus metrics at /metrics",
      parse: onOff,
    },
    {
      key: "events",
      env: "EVENTS",
      defaultValue: true,
      accepts: "on or off",
      description:
        "order events: live streams and order metrics (off only to measure what they cost)",
      parse: onOff,
    },
    {
      key: "requestIds",
      env: "REQUEST_IDS",
      defaultValue: true,
      accepts: "on or off",
      description:
        "an X-Request-Id on every response (off only to measure what it costs)",
      parse: onOff,
    },
    {
      key: "sseHeartbeatMs",
      env: "SSE_HEARTBEAT_MS",
      defaultValue: 15_000,
      accepts: "an integer from 10 to 600000",
      description: "how often an idle event stream sends a heartbeat comment",
      parse: integer(10, 600_000),
    },
    {
      key: "webhookAllowPrivate",
      env: "WEBHOOK_ALLOW_PRIVATE",
      defaultValue: false,
      accepts: "on or off",
      description:
        "webhooks may go to loopback, private, link-local and metadata addresses (for receivers on this machine or network)",
      parse: onOff,
    },
    {
      key: "webhookAllowHttp",
      env: "WEBHOOK_ALLOW_HTTP",
      defaultValue: false,
      accepts: "on or off",
      description: "webhooks may go to http: URLs, not only https:",
      parse: onOff,
    },
    {
      key: "webhookTimeoutMs",
      env: "WEBHOOK_TIMEOUT_MS",
      defaultValue: 10_000,
      accepts: "an integer from 100 to 120000",
      description:
        "how long one webhook attempt may take before it counts as failed",
      parse: integer(100, 120_000),
    },
    {
      key: "webhookScheduleScale",
      env: "WEBHOOK_SCHEDULE_SCALE",
      defaultValue: 1,
      accepts: "a number from 0 to 1",
      description:
        "scales the webhook retry schedule and the 5-day disabling window (tests run them in seconds)",
      parse: decimal(0, 1),
    },
    {
      key: "webhookRetentionHours",
      env: "WEBHOOK_RETENTION_HOURS",
      defaultValue: 168,
      accepts: "a number of hours from 0.001 to 8760",
      description:
        "how long a delivered webhook message is kept (and listed) before it is pruned; failed and pending ones are kept",
      parse: decimal(0.001, 8760),
    },
    {
      key: "apiKeysFile",
      env: "API_KEYS_FILE",
      defaultValue: undefined,
      accepts: "a file path",
      description:
        "a file of API keys, one per line, so keys need not sit in the environment",
      parse: (raw: string) => raw,
    },
  ];
}

/** Checks keys read from `API_KEYS_FILE`, naming the first bad line. */
export function validateApiKeys(keys: readonly string[], source: string): void {
  const bad = keys.findIndex((key) => !API_KEY.test(key));
  if (bad !== -1) {
    throw new ConfigError(
      `Invalid key number ${
        bad + 1
      } in ${source}: keys are 16 to 256 characters from A-Z a-z 0-9 . _ ~ + / -`,
    );
  }
}

function flagName(env: string): string {
  return env.toLowerCase().replaceAll("_", "-");
}

/** The `--help` text, with the settings of `kinds` of store. */
export function helpText(kinds: readonly StoreKind[] = STORE_KINDS): string {
  const lines = [
    "order-service: a concurrent order-processing HTTP service",
    "",
    "Usage: order-service [--FLAG=VALUE ...]",
    "",
    "Each setting is a flag or an environment variable; the flag wins.",
    "",
  ];
  for (const setting of settingsFor(kinds)) {
    lines.push(
      `  --${flagName(setting.env)}, ${setting.env} (default ${
        typeof setting.defaultValue === "boolean"
          ? (setting.defaultValue ? "on" : "off")
          : setting.defaultValue === undefined ||
              setting.defaultValue.length === 0
          ? "none"
          : setting.defaultValue
      })`,
      `      ${setting.description}; ${setting.accepts}`,
    );
  }
  lines.push("  --help", "      print this text and exit");
  return lines.join("\n");
}

/**
 * Reads the configuration, or `"help"` when `--help` was given.
 *
 * @throws {ConfigError} naming the setting and what it accepts.
 */
export function parseConfig(
  args: readonly string[],
  env: (name: string) => string | undefined,
  kinds: readonly StoreKind[] = STORE_KINDS,
): Config | "help" {
  const settings = settingsFor(kinds);
  const options: Record<string, { type: "string" | "boolean" }> = {
    help: { type: "boolean" },
  };
  for (const setting of settings) {
    options[flagName(setting.env)] = { type: "string" };
  }
  let flags: Record<string, string | boolean | undefined>;
  try {
    flags = parseArgs({
      // `deno task start -- --help` hands main.ts the "--" it was given;
      // the flags after it are still meant as flags.
      args: args[0] === "--" ? args.slice(1) : [...args],
      options,
      strict: true,
      allowPositionals: false,
    }).values as Record<string, string | boolean | undefined>;
  } catch (error) {
    throw new ConfigError(`${(error as Error).message}; see --help`);
  }
  if (flags.help) return "help";
  const config: Record<string, unknown> = {};
  for (const setting of settings) {
    const flag = flags[flagName(setting.env)];
    const raw = typeof flag === "string" ? flag : env(setting.env);
    const source = typeof flag === "string"
      ? `--${flagName(setting.env)}`
      : setting.env;
    if (raw === undefined || raw === "") {
      config[setting.key] = setting.defaultValue;
      continue;
    }
    const value = setting.parse(raw.trim());
    if (value === undefined) {
      throw new ConfigError(
        setting.secret
          ? `Invalid ${source}: expected ${setting.accepts}`
          : `Invalid ${source} "${raw}": expected ${setting.accepts}`,
      );
    }
    config[setting.key] = value;
  }
  // Processes sharing a port must share their orders too: with a memory or
  // SQLite store each would answer for its own orders only.
  if (
    config.reusePort === true &&
    !storeKindOf(String(config.store), kinds)?.shared
  ) {
    throw new ConfigError(
      "REUSE_PORT=on needs a PostgreSQL STORE: processes sharing a port must share one store",
    );
  }
  // Isolates share a shared store, or divide one that is not.
  const kind = storeKindOf(String(config.store), kinds);
  if (config.parallel !== 1 && !kind?.shared && !kind?.isolates) {
    throw new ConfigError(
      `PARALLEL above 1 needs a STORE its isolates can divide: a ${kind?.name} store cannot be`,
    );
  }
  return config as unknown as Config;
}
