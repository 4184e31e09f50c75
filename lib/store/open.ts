/**
 * Opening the store that `STORE` names.
 *
 * @module
 */

import { MemoryStore } from "./memory.ts";
import { SqliteStore, type SqliteSynchronous } from "./sqlite.ts";
import type { OrderStore } from "../orders/order_store.ts";

/** Options for {@linkcode openStore}. */
export interface OpenStoreOptions {
  /** Memory store only: orders kept before the oldest finished are evicted. */
  maxOrders: number;
  /** SQLite store only. */
  synchronous: SqliteSynchronous;
}

/**
 * Opens `memory` or `sqlite:PATH`.
 *
 * @throws {StoreOpenError} when the SQLite database cannot be opened.
 */
export function openStore(spec: string, options: OpenStoreOptions): OrderStore {
  if (spec.startsWith("sqlite:")) {
    return new SqliteStore(spec.slice("sqlite:".length), {
      synchronous: options.synchronous,
    });
  }
  if (spec === "memory") {
    return new MemoryStore({ maxOrders: options.maxOrders });
  }
  throw new RangeError(`Cannot open store: unknown kind "${spec}"`);
}
