/**
 * The PostgreSQL store as a `postgres://` URL names it.
 *
 * @module
 */

import { PostgresStore } from "./postgres.ts";
import {
  isInstanceId,
  isPostgresUrl,
  isSchemaName,
  redactUrl,
} from "./postgres_connection.ts";
import { integerIn, opened, storeKind } from "./store_kind.ts";

/** Orders in one PostgreSQL schema, which any number of instances share. */
export const POSTGRES_KIND = storeKind({
  name: "postgres",
  accepts: "a postgres:// or postgresql:// URL",
  matches: isPostgresUrl,
  shared: true,
  keepsOrders: true,
  redact: redactUrl,
  settings: {
    pgPoolSize: {
      env: "PG_POOL_SIZE",
      defaultValue: 10,
      accepts: "an integer from 1 to 1000",
      description:
        "PostgreSQL store: connections in the pool (plus the listener's one and the writes' two)",
      parse: integerIn(1, 1000),
    },
    pgConnectTimeoutMs: {
      env: "PG_CONNECT_TIMEOUT_MS",
      defaultValue: 10_000,
      accepts: "an integer from 0 to 600000",
      description:
        "PostgreSQL store: how long start-up retries a database it cannot reach (then exit 2)",
      parse: integerIn(0, 600_000),
    },
    pgSchema: {
      env: "PG_SCHEMA",
      defaultValue: "order_service",
      accepts: "1 to 56 of a-z, 0-9 and _, not starting with a digit",
      description: "PostgreSQL store: the schema holding its tables",
      parse: (raw: string) => isSchemaName(raw) ? raw : undefined,
    },
    instanceId: {
      env: "INSTANCE_ID",
      defaultValue: undefined as string | undefined,
      accepts: "1 to 64 of A-Z a-z 0-9 . _ -",
      description:
        "PostgreSQL store: this instance's id among those sharing the database (default: generated at each start)",
      parse: (raw: string) => isInstanceId(raw) ? raw : undefined,
    },
    leaseMs: {
      env: "LEASE_MS",
      defaultValue: 5000,
      accepts: "an integer from 500 to 600000",
      description:
        "PostgreSQL store: an instance silent this long is presumed dead and its orders are rescued (heartbeats every fifth of it)",
      parse: integerIn(500, 600_000),
    },
  },
  open: async (spec, settings) => {
    const store = await PostgresStore.open(spec, {
      poolSize: settings.pgPoolSize,
      schema: settings.pgSchema,
      connectTimeoutMs: settings.pgConnectTimeoutMs,
      leaseMs: settings.leaseMs,
      ...(settings.instanceId !== undefined
        ? { instanceId: settings.instanceId }
        : {}),
    });
    return { ...opened(store, "postgres"), instanceId: store.instanceId };
  },
});
