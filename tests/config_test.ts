import assert from "node:assert/strict";
import {
  ConfigError,
  helpText,
  parseConfig,
  redactConfig,
} from "../lib/config.ts";

const noEnv = () => undefined;

Deno.test("a PostgreSQL URL is accepted as STORE, and logged without its password", () => {
  const config = parseConfig(
    [],
    (name) =>
      ({ STORE: "postgresql://app:s3cret@db:5432/orders" } as Record<
        string,
        string
      >)[name],
  );
  assert.ok(config !== "help");
  assert.equal(config.store, "postgresql://app:s3cret@db:5432/orders");
  const logged = JSON.stringify(redactConfig(config));
  assert.ok(!logged.includes("s3cret"), logged);
  assert.match(logged, /postgresql:\/\/app:\*\*\*@db:5432\/orders/);
  assert.throws(
    () =>
      parseConfig(
        [],
        (name) => name === "STORE" ? "postgres://u:pw@" : undefined,
      ),
    (error: Error) => !error.message.includes("pw"),
  );
});

Deno.test("parseConfig() gives the documented defaults", () => {
  assert.deepEqual(parseConfig([], noEnv), {
    port: 8080,
    host: "0.0.0.0",
    workers: 5,
    queueCapacity: 100,
    latencyScale: 1,
    failureRate: 0,
    maxAttempts: 3,
    shutdownTimeoutMs: 30000,
    maxOrders: 1000000,
    logLevel: "info",
    store: "memory",
    pgPoolSize: 10,
    pgSchema: "order_service",
    pgConnectTimeoutMs: 10000,
    instanceId: undefined,
    leaseMs: 5000,
    reusePort: false,
    parallel: 1,
    sqliteSynchronous: "full",
    maxInFlight: 1024,
    bodyTimeoutMs: 10000,
    idleTimeoutMs: 30000,
    apiKeys: [],
    apiKeysFile: undefined,
    corsOrigins: [],
    metrics: true,
    events: true,
    requestIds: true,
    sseHeartbeatMs: 15000,
    webhookAllowPrivate: false,
    webhookAllowHttp: false,
    webhookTimeoutMs: 10000,
    webhookScheduleScale: 1,
    webhookRetentionHours: 168,
  });
});

Deno.test("parseConfig() reads environment variables, and a flag wins over its variable", () => {
  const env: Record<string, string> = {
    WORKERS: "7",
    QUEUE_CAPACITY: "9",
    LATENCY_SCALE: "0.5",
  };
  const config = parseConfig(
    ["--workers=3", "--log-level", "debug"],
    (name) => env[name],
  );
  assert.ok(config !== "help");
  assert.equal(config.workers, 3);
  assert.equal(config.queueCapacity, 9);
  assert.equal(config.latencyScale, 0.5);
  assert.equal(config.logLevel, "debug");
});

Deno.test("parseConfig() names the setting and what it accepts when a value is invalid", () => {
  const cases: Array<[string[], Record<string, string>, RegExp]> = [
    [[], { PORT: "70000" }, /PORT.*0 to 65535/],
    [[], { WORKERS: "0" }, /WORKERS.*integer from 1/],
    [[], { FAILURE_RATE: "1.5" }, /FAILURE_RATE.*0 to 1/],
    [[], { LOG_LEVEL: "loud" }, /LOG_LEVEL.*debug, info, warning, error/],
    [[], { STORE: "redis" }, /STORE.*memory, sqlite:PATH, or a postgres:\/\//],
    [[], { STORE: "postgres://" }, /STORE/],
    [[], { STORE: "sqlite:" }, /STORE/],
    [[], { SQLITE_SYNCHRONOUS: "off" }, /SQLITE_SYNCHRONOUS.*full or normal/],
    [["--max-attempts=-1"], {}, /--max-attempts/],
    [["--no-such-flag"], {}, /no-such-flag/],
  ];
  for (const [args, env, message] of cases) {
    assert.throws(() => parseConfig(args, (name) => env[name]), (error) => {
      assert.ok(error instanceof ConfigError);
      assert.match(error.message, message);
      return true;
    });
  }
});

Deno.test("--help is recognised and the help text lists every variable", () => {
  assert.equal(parseConfig(["--help"], noEnv), "help");
  // As `deno task start -- --help` passes it.
  assert.equal(parseConfig(["--", "--help"], noEnv), "help");
  for (
    const name of [
      "PORT",
      "HOST",
      "WORKERS",
      "QUEUE_CAPACITY",
      "LATENCY_SCALE",
      "FAILURE_RATE",
      "MAX_ATTEMPTS",
      "SHUTDOWN_TIMEOUT_MS",
      "MAX_ORDERS",
      "LOG_LEVEL",
      "STORE",
    ]
  ) assert.match(helpText(), new RegExp(name));
});

Deno.test("REUSE_PORT=on is refused without a PostgreSQL store: processes sharing a port must share their orders", () => {
  assert.throws(
    () => parseConfig(["--reuse-port=on"], noEnv),
    (error: Error) =>
      error instanceof ConfigError && /PostgreSQL/.test(error.message),
  );
  const config = parseConfig(
    ["--reuse-port=on", "--store=postgres://127.0.0.1/test"],
    noEnv,
  );
  assert.ok(config !== "help" && config.reusePort);
});
