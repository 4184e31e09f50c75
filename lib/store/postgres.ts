/**
 * The PostgreSQL order store: one database that survives the process, with
 * the schema created and migrated on start.
 *
 * This is the single-instance part of the PostgreSQL work (issue 12):
 * claims, leases, rescue and cross-instance events are not here yet, so one
 * instance at a time may use a schema.
 *
 * @module
 */

import postgres from "postgres";
import {
  IdempotencyConflictError,
  OrderNotFoundError,
  StoreOpenError,
  StoreUnavailableError,
} from "../orders/errors.ts";
import {
  type NewOrder,
  type Order,
  type OrderStatus,
  sameNewOrder,
  type TimelineEntry,
} from "../orders/order.ts";
import { createOrderIdFactory } from "../orders/order_id.ts";
import type {
  CreateOptions,
  CreateResult,
  ListOptions,
  ListPage,
  OrderStore,
  Transition,
} from "../orders/order_store.ts";
import { applyTransition, refuseTransition } from "../orders/transition.ts";

/** The schema version this release creates and understands. */
export const POSTGRES_SCHEMA_VERSION = 1;

/** Options for {@linkcode PostgresStore.open}. */
export interface PostgresStoreOptions {
  /** The schema holding the tables (default `order_service`). */
  schema?: string;
  /** Connections in the pool (default 10). */
  poolSize?: number;
  /**
   * How long start-up keeps trying a database it cannot reach (refused,
   * timed out, shutting down), in milliseconds (default 10 000). A wrong
   * password or a missing database fails at once.
   */
  connectTimeoutMs?: number;
  /** The clock, in epoch milliseconds (injected by tests). */
  now?: () => number;
}

/** The URL as it may be logged: the password replaced. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = "***";
    return parsed.toString();
  } catch {
    return "(an invalid URL)";
  }
}

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

interface OrderRow {
  id: string;
  customer_id: string;
  restaurant_id: string;
  items: string[];
  status: OrderStatus;
  created_at: string;
  updated_at: string;
  attempts: number;
  failure_reason: string | null;
  cancel_requested: boolean;
  timeline: TimelineEntry[];
}

function toOrder(row: OrderRow): Order {
  return {
    id: row.id,
    customer_id: row.customer_id,
    restaurant_id: row.restaurant_id,
    items: row.items,
    status: row.status,
    // bigint columns come back as strings; epoch milliseconds fit a double.
    created_at: Number(row.created_at),
    updated_at: Number(row.updated_at),
    attempts: row.attempts,
    failure_reason: row.failure_reason,
    cancel_requested: row.cancel_requested,
    timeline: row.timeline,
  };
}

/**
 * Whether an error means the database could not be reached or used (a
 * refused or lost connection, a server shutting down), as opposed to a bug
 * in a query: those become `StoreUnavailableError` (503, and a worker
 * retries), the rest stay what they are.
 */
function isUnavailable(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  if (typeof code !== "string") return false;
  return /^(08|53|57P|58)/.test(code) || // SQLSTATE connection, resources, shutdown
    /^(ECONN|EPIPE|ETIMEDOUT|EHOSTUNREACH|ENOTFOUND|EAI_AGAIN|CONNECT_TIMEOUT|CONNECTION_)/
      .test(code);
}

/**
 * Orders in PostgreSQL. Every change is one transaction that locks the
 * order's row (`SELECT … FOR UPDATE`) before deciding: without the lock,
 * two changes that both read `processing` could both apply (a cancel and a
 * completion); with it, the second waits and then sees the first's result.
 *
 * @example
 * ```ts ignore
 * import { PostgresStore } from "./postgres.ts";
 * const store = await PostgresStore.open("postgres://127.0.0.1/test");
 * await store.close();
 * ```
 */
export class PostgresStore implements OrderStore {
  readonly #sql: postgres.Sql;
  readonly #table: string;
  readonly #now: () => number;
  readonly #newId = createOrderIdFactory();

  private constructor(
    sql: postgres.Sql,
    schema: string,
    now: () => number,
  ) {
    this.#sql = sql;
    this.#table = `"${schema}".orders`;
    this.#now = now;
  }

  /**
   * Connects, then creates or migrates the schema under an advisory lock,
   * so that instances starting together do not race.
   *
   * @throws {StoreOpenError} when the database cannot be reached, refuses
   * the login, or holds a schema newer than this release.
   */
  static async open(
    url: string,
    options: PostgresStoreOptions = {},
  ): Promise<PostgresStore> {
    const schema = options.schema ?? "order_service";
    const what = `the PostgreSQL store ${redactUrl(url)}`;
    if (!SCHEMA_NAME.test(schema)) {
      throw new StoreOpenError(
        what,
        `schema name "${schema}" must be 1–63 of a-z, 0-9 and _`,
      );
    }
    let sql: postgres.Sql;
    try {
      sql = postgres(url, {
        max: options.poolSize ?? 10,
        onnotice: () => {},
        // A statement that cannot get a connection fails instead of
        // waiting for ever: requests answer 503, workers retry.
        connect_timeout: 5,
      });
    } catch (error) {
      throw new StoreOpenError(what, (error as Error).message);
    }
    const deadline = Date.now() + (options.connectTimeoutMs ?? 10_000);
    for (let attempt = 1;; attempt++) {
      try {
        await migrate(sql, schema);
        break;
      } catch (error) {
        // A database that is starting or restarting answers soon: wait for
        // it, 100 ms doubling to 2 s, within the bound.
        const waitMs = Math.min(2000, 100 * 2 ** (attempt - 1));
        if (isUnavailable(error) && Date.now() + waitMs < deadline) {
          await new Promise((resolve) => setTimeout(resolve, waitMs));
          continue;
        }
        await sql.end({ timeout: 1 }).catch(() => {});
        if (error instanceof StoreOpenError) throw error;
        const gaveUp = isUnavailable(error)
          ? ` (still unreachable after ${attempt} attempts)`
          : "";
        throw new StoreOpenError(what, (error as Error).message + gaveUp);
      }
    }
    return new PostgresStore(sql, schema, options.now ?? Date.now);
  }

  create(input: NewOrder, options: CreateOptions = {}): Promise<CreateResult> {
    return this.#run(async (sql) => {
      const now = this.#now();
      const key = options.idempotencyKey ?? null;
      const timeline: TimelineEntry[] = [{
        at: now,
        type: "status",
        status: "pending",
      }];
      // ON CONFLICT: two requests with one key race to insert; the loser
      // inserts nothing and reads the winner's order below.
      const inserted = await sql<OrderRow[]>`
        INSERT INTO ${sql.unsafe(this.#table)}
          (id, customer_id, restaurant_id, items, status, created_at,
           updated_at, attempts, failure_reason, cancel_requested, timeline,
           idempotency_key)
        VALUES (${this.#newId()}, ${input.customer_id}, ${input.restaurant_id},
          ${sql.json(input.items)}, 'pending', ${now}, ${now}, 0, NULL, false,
          ${sql.json(timeline as unknown as postgres.JSONValue)}, ${key})
        ON CONFLICT (idempotency_key) DO NOTHING
        RETURNING *`;
      if (inserted[0]) return { order: toOrder(inserted[0]), created: true };
      const [existing] = await sql<OrderRow[]>`
        SELECT * FROM ${sql.unsafe(this.#table)}
        WHERE idempotency_key = ${key}`;
      const order = toOrder(existing!);
      if (!sameNewOrder(order, input)) {
        throw new IdempotencyConflictError(key!, order.id);
      }
      return { order, created: false };
    });
  }

  get(id: string): Promise<Order | undefined> {
    return this.#run(async (sql) => {
      const [row] = await sql<OrderRow[]>`
        SELECT * FROM ${sql.unsafe(this.#table)} WHERE id = ${id}`;
      return row && toOrder(row);
    });
  }

  getByIdempotencyKey(key: string): Promise<Order | undefined> {
    return this.#run(async (sql) => {
      const [row] = await sql<OrderRow[]>`
        SELECT * FROM ${sql.unsafe(this.#table)}
        WHERE idempotency_key = ${key}`;
      return row && toOrder(row);
    });
  }

  list(options: ListOptions): Promise<ListPage> {
    return this.#run(async (sql) => {
      const rows = await sql<OrderRow[]>`
        SELECT * FROM ${sql.unsafe(this.#table)}
        WHERE (${options.after ?? null}::text IS NULL OR id > ${
        options.after ?? null
      })
          AND (${options.status ?? null}::text IS NULL OR status = ${
        options.status ?? null
      })
        ORDER BY id
        LIMIT ${options.limit + 1}`;
      const hasMore = rows.length > options.limit;
      return {
        orders: rows.slice(0, options.limit).map(toOrder),
        hasMore,
      };
    });
  }

  transition(id: string, change: Transition): Promise<Order> {
    return this.#run((sql) =>
      sql.begin(async (tx) => {
        // Race: see the class comment; the row lock serialises changes.
        const [row] = await tx<OrderRow[]>`
          SELECT * FROM ${tx.unsafe(this.#table)} WHERE id = ${id}
          FOR UPDATE`;
        if (!row) throw new OrderNotFoundError(id);
        const current = toOrder(row);
        const refusal = refuseTransition(id, {
          status: current.status,
          cancelRequested: current.cancel_requested,
        }, change);
        if (refusal) throw refusal;
        const next = applyTransition(current, change, this.#now());
        await tx`
          UPDATE ${tx.unsafe(this.#table)} SET
            status = ${next.status},
            updated_at = ${next.updated_at},
            attempts = ${next.attempts},
            failure_reason = ${next.failure_reason},
            cancel_requested = ${next.cancel_requested},
            timeline = ${
          tx.json(next.timeline as unknown as postgres.JSONValue)
        }
          WHERE id = ${id}`;
        return next;
      })
    );
  }

  async close(): Promise<void> {
    await this.#sql.end({ timeout: 5 });
  }

  /** Runs a query, turning a lost or refused database into `StoreUnavailableError`. */
  async #run<T>(query: (sql: postgres.Sql) => Promise<T>): Promise<T> {
    try {
      return await query(this.#sql);
    } catch (error) {
      if (isUnavailable(error)) {
        throw new StoreUnavailableError((error as Error).message);
      }
      throw error;
    }
  }
}

async function migrate(sql: postgres.Sql, schema: string): Promise<void> {
  const quoted = `"${schema}"`;
  await sql.begin(async (tx) => {
    // Instances that start together take turns; the lock ends with the
    // transaction.
    await tx`SELECT pg_advisory_xact_lock(hashtext(${`order-service:${schema}`}))`;
    await tx.unsafe(`CREATE SCHEMA IF NOT EXISTS ${quoted}`);
    await tx.unsafe(
      `CREATE TABLE IF NOT EXISTS ${quoted}.schema_version (version integer NOT NULL)`,
    );
    const [row] = await tx<{ version: number }[]>`
      SELECT version FROM ${tx.unsafe(`${quoted}.schema_version`)}`;
    const version = row?.version ?? 0;
    if (version > POSTGRES_SCHEMA_VERSION) {
      throw new StoreOpenError(
        `the PostgreSQL schema "${schema}"`,
        `its version ${version} is newer than this release understands (${POSTGRES_SCHEMA_VERSION}); upgrade order-service`,
      );
    }
    if (version === POSTGRES_SCHEMA_VERSION) return;
    await tx.unsafe(`
      CREATE TABLE ${quoted}.orders (
        id text PRIMARY KEY,
        customer_id text NOT NULL,
        restaurant_id text NOT NULL,
        items jsonb NOT NULL,
        status text NOT NULL,
        created_at bigint NOT NULL,
        updated_at bigint NOT NULL,
        attempts integer NOT NULL,
        failure_reason text,
        cancel_requested boolean NOT NULL,
        timeline jsonb NOT NULL,
        idempotency_key text UNIQUE
      )`);
    await tx.unsafe(
      `CREATE INDEX orders_status_id ON ${quoted}.orders (status, id)`,
    );
    if (row) {
      await tx`UPDATE ${
        tx.unsafe(`${quoted}.schema_version`)
      } SET version = ${POSTGRES_SCHEMA_VERSION}`;
    } else {
      await tx`INSERT INTO ${
        tx.unsafe(`${quoted}.schema_version`)
      } VALUES (${POSTGRES_SCHEMA_VERSION})`;
    }
  });
}
