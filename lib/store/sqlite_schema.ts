/**
 * The SQLite store's schema and statements, in one place, and its rows'
 * conversion to orders.
 *
 * @module
 */

import type { DatabaseSync } from "node:sqlite";
import { StoreOpenError } from "../orders/errors.ts";
import type { Order, OrderStatus } from "../orders/order.ts";
import type { ListOptions } from "../orders/order_store.ts";
import { listConditions } from "./list_sql.ts";

/**
 * The migrations, by the version each makes (`PRAGMA user_version`): a
 * file at version N runs those after it, in one transaction.
 */
const MIGRATIONS: ReadonlyArray<readonly string[]> = [
  // 1: the orders.
  [
    `CREATE TABLE orders (
      id TEXT PRIMARY KEY,
      customer_id TEXT NOT NULL,
      restaurant_id TEXT NOT NULL,
      items TEXT NOT NULL,
      status TEXT NOT NULL,
      created_at INTEGER NOT NULL,
      updated_at INTEGER NOT NULL,
      attempts INTEGER NOT NULL,
      failure_reason TEXT,
      cancel_requested INTEGER NOT NULL,
      timeline TEXT NOT NULL,
      idempotency_key TEXT UNIQUE
    ) WITHOUT ROWID`,
    "CREATE INDEX orders_by_status ON orders (status, id)",
  ],
  // 2: finding one customer's or one restaurant's orders, in id order.
  [
    "CREATE INDEX orders_by_customer ON orders (customer_id, id)",
    "CREATE INDEX orders_by_restaurant ON orders (restaurant_id, id)",
  ],
  // 3: what operators set that outlives a request (control_records.ts).
  [
    `CREATE TABLE control (
      name TEXT PRIMARY KEY,
      value TEXT NOT NULL
    ) WITHOUT ROWID`,
  ],
  // 4: webhook endpoints, and the outbox of their deliveries.
  [
    `CREATE TABLE webhook_endpoints (
      id TEXT PRIMARY KEY,
      url TEXT NOT NULL,
      events TEXT,
      description TEXT,
      created_at INTEGER NOT NULL,
      disabled_at INTEGER,
      disabled_reason TEXT,
      secrets TEXT NOT NULL
    ) WITHOUT ROWID`,
    `CREATE TABLE webhook_deliveries (
      seq INTEGER PRIMARY KEY AUTOINCREMENT,
      id TEXT NOT NULL UNIQUE,
      endpoint_id TEXT NOT NULL,
      order_id TEXT NOT NULL,
      type TEXT NOT NULL,
      created_at INTEGER NOT NULL,
      order_json TEXT NOT NULL,
      status TEXT NOT NULL,
      attempts INTEGER NOT NULL,
      next_attempt_at INTEGER,
      last_attempt_at INTEGER,
      last_status INTEGER,
      last_error TEXT
    )`,
    "CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries (endpoint_id, status, seq)",
  ],
  // 5: an endpoint enabled again by hand; the pruning of delivered messages.
  [
    "ALTER TABLE webhook_endpoints ADD COLUMN enabled_at INTEGER",
    "ALTER TABLE webhook_endpoints ADD COLUMN pruned_delivered_at INTEGER",
    `CREATE INDEX webhook_deliveries_delivered ON webhook_deliveries
      (last_attempt_at) WHERE status = 'delivered'`,
  ],
];

/** The schema version this release writes (`PRAGMA user_version`). */
export const SCHEMA_VERSION = MIGRATIONS.length;

/** The SQLite store at `path` cannot be opened, because of `reason`. */
export function openError(path: string, reason: string): StoreOpenError {
  return new StoreOpenError(`the SQLite store "${path}"`, reason);
}

// Every statement lives here, so the SQL can be read in one place.
export const SQL = {
  insert: `INSERT INTO orders (id, customer_id, restaurant_id, items, status,
      created_at, updated_at, attempts, failure_reason, cancel_requested,
      timeline, idempotency_key)
    VALUES (?, ?, ?, ?, 'pending', ?, ?, 0, NULL, 0, ?, ?)`,
  byId: "SELECT * FROM orders WHERE id = ?",
  byKey: "SELECT * FROM orders WHERE idempotency_key = ?",
  update: `UPDATE orders SET status = ?, updated_at = ?, attempts = ?,
      failure_reason = ?, cancel_requested = ?, timeline = ?
    WHERE id = ?`,
  pendingIds:
    "SELECT id FROM orders WHERE status = 'pending' AND id > ? AND id <= ? ORDER BY id LIMIT ?",
  statusOf: "SELECT status FROM orders WHERE id = ?",
  controlRead: "SELECT value FROM control WHERE name = ?",
  controlWrite:
    "INSERT INTO control (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
  controlInsert:
    "INSERT INTO control (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
} as const;

/**
 * A page of orders with the filters `options` gives, oldest first, one
 * row more than the page (to tell whether another follows): the statement,
 * and its values in order.
 */
export function listQuery(
  options: ListOptions,
): { sql: string; values: Array<string | number> } {
  const { conditions, values } = listConditions(options);
  const where = conditions.length === 0
    ? ""
    : ` WHERE ${conditions.join(" AND ")}`;
  return {
    sql: `SELECT * FROM orders${where} ORDER BY id LIMIT ?`,
    values: [...values, options.limit + 1],
  };
}

/** An orders row as node:sqlite returns it. */
export interface Row {
  id: string;
  customer_id: string;
  restaurant_id: string;
  items: string;
  status: OrderStatus;
  created_at: number;
  updated_at: number;
  attempts: number;
  failure_reason: string | null;
  cancel_requested: number;
  timeline: string;
  idempotency_key: string | null;
}

/** The order a row holds. */
export function toOrder(row: Row): Order {
  return {
    id: row.id,
    customer_id: row.customer_id,
    restaurant_id: row.restaurant_id,
    items: JSON.parse(row.items),
    status: row.status,
    created_at: row.created_at,
    updated_at: row.updated_at,
    attempts: row.attempts,
    failure_reason: row.failure_reason,
    cancel_requested: row.cancel_requested === 1,
    timeline: JSON.parse(row.timeline),
  };
}

/** Creates or migrates the schema; refuses one newer than this release. */
export function migrate(db: DatabaseSync, path: string): void {
  const versionNow = () =>
    (db.prepare("PRAGMA user_version").get() as { user_version: number })
      .user_version;
  const refuseNewer = (version: number) => {
    if (version > SCHEMA_VERSION) {
      throw openError(
        path,
        `its schema version ${version} is newer than this release understands (${SCHEMA_VERSION}); upgrade order-service`,
      );
    }
  };
  const seen = versionNow();
  refuseNewer(seen);
  if (seen === SCHEMA_VERSION) return;
  db.exec("BEGIN IMMEDIATE");
  try {
    // Read again under the write lock: isolates sharing the file
    // (`PARALLEL`) open it at once, and one may have migrated it since.
    const version = versionNow();
    refuseNewer(version);
    if (version !== SCHEMA_VERSION) {
      for (const migration of MIGRATIONS.slice(version)) {
        for (const statement of migration) db.exec(statement);
      }
      db.exec(`PRAGMA user_version = ${SCHEMA_VERSION}`);
    }
    db.exec("COMMIT");
  } catch (error) {
    db.exec("ROLLBACK");
    throw error;
  }
}
