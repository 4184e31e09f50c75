/**
 * Opening the store that `STORE` names.
 *
 * @module
 */

import { MemoryStore } from "./memory.ts";
import { isPostgresUrl, PostgresStore } from "./postgres.ts";
import { SqliteStore, type SqliteSynchronous } from "./sqlite.ts";
import type { OrderStore } from "../orders/order_store.ts";

/** Options for {@linkcode openStore}. */
export interface OpenStoreOptions {
  /** Memory store only: orders kept before the oldest finished are evicted. */
  maxOrders: number;
  /** SQLite store only. */
  synchronous: SqliteSynchronous;
  /** PostgreSQL store only: connections in the pool. */
  poolSize?: number;
  /** PostgreSQL store only: the schema holding its tables. */
  schema?: string;
  /** PostgreSQL store only: how long start-up waits for the database. */
  connectTimeoutMs?: number;
  /** PostgreSQL store only: this instance's id (generated when absent). */
  instanceId?: string | undefined;
  /** PostgreSQL store only: the lease, in milliseconds. */
  leaseMs?: number;
}

/**
 * Opens `memory`, `sqlite:PATH` or a `postgres://` / `postgresql://` URL.
 *
 * @throws {StoreOpenError} when the database cannot be opened.
 */
export async function openStore(
  spec: string,
  options: OpenStoreOptions,
): Promise<OrderStore> {
  if (spec.startsWith("sqlite:")) {
    return new SqliteStore(spec.slice("sqlite:".length), {
      synchronous: options.synchronous,
    });
  }
  if (isPostgresUrl(spec)) {
    return await PostgresStore.open(spec, {
      ...(options.poolSize !== undefined ? { poolSize: options.poolSize } : {}),
      ...(options.schema !== undefined ? { schema: options.schema } : {}),
      ...(options.connectTimeoutMs !== undefined
        ? { connectTimeoutMs: options.connectTimeoutMs }
        : {}),
      ...(options.instanceId !== undefined
        ? { instanceId: options.instanceId }
        : {}),
      ...(options.leaseMs !== undefined ? { leaseMs: options.leaseMs } : {}),
    });
  }
  if (spec === "memory") {
    return new MemoryStore({ maxOrders: options.maxOrders });
  }
  throw new RangeError(`Cannot open store: unknown kind "${spec}"`);
}
