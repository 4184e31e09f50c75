/**
 * The PostgreSQL order store: one database that survives the process, with
 * the schema created and migrated on start.
 *
 * On node-postgres (`pg`): the `postgres` client (3.4.9) crashed the whole
 * process under Deno when the database cut a connection while a write was
 * queued (porsager/postgres#1154, #1208); `pg` reports the same event as a
 * catchable error (SQLSTATE 57P01), checked by terminating every backend
 * under load.
 *
 * This is the single-instance part of the PostgreSQL work (issue 12):
 * claims, leases, rescue and cross-instance events are not here yet, so one
 * instance at a time may use a schema.
 *
 * @module
 */

// @ts-types="npm:@types/pg@8.23.1"
import pg from "pg";
import { doublingDelay } from "../async/backoff.ts";
import {
  IdempotencyConflictError,
  OrderNotFoundError,
  StoreOpenError,
  StoreUnavailableError,
} from "../orders/errors.ts";
import {
  type NewOrder,
  type Order,
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

// A database that does not answer at start: 100 ms doubling to 2 s.
const CONNECT_RETRY = doublingDelay(100, 2000);

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

/** Whether `spec` is a `postgres://` or `postgresql://` URL this store can open. */
export function isPostgresUrl(spec: string): boolean {
  if (!/^postgres(ql)?:\/\/./.test(spec)) return false;
  try {
    new URL(spec);
    return true;
  } catch {
    return false;
  }
}

/** Whether `name` is a schema name this store accepts: 1–63 of a-z, 0-9 and _, not starting with a digit. */
export function isSchemaName(name: string): boolean {
  return /^[a-z_][a-z0-9_]{0,62}$/.test(name);
}

/** An orders row: the order's fields, with bigint times as pg returns them. */
type OrderRow = Omit<Order, "created_at" | "updated_at"> & {
  created_at: string;
  updated_at: string;
};

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
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === "string") {
    return /^(08|53|57P|58)/.test(code) || // SQLSTATE connection, resources, shutdown
      /^(ECONN|EPIPE|ETIMEDOUT|EHOSTUNREACH|ENOTFOUND|EAI_AGAIN)/.test(code);
  }
  // node-postgres reports a dropped or unobtainable connection by message
  // only ("Connection terminated unexpectedly", "Client has encountered a
  // connection error and is not queryable", "timeout exceeded when trying
  // to connect").
  return /connection terminated|connection error|not queryable|timeout exceeded when trying to connect|connection ended/i
    .test(String((error as Error | null)?.message));
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
  readonly #pool: pg.Pool;
  readonly #table: string;
  readonly #now: () => number;
  readonly #newId = createOrderIdFactory();

  private constructor(
    pool: pg.Pool,
    schema: string,
    now: () => number,
  ) {
    this.#pool = pool;
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
    if (!isSchemaName(schema)) {
      throw new StoreOpenError(
        what,
        `schema name "${schema}" must be 1–63 of a-z, 0-9 and _`,
      );
    }
    let pool: pg.Pool;
    try {
      pool = new pg.Pool({
        connectionString: url,
        max: options.poolSize ?? 10,
        // A query that cannot get a connection fails instead of waiting
        // for ever: requests answer 503, workers retry.
        connectionTimeoutMillis: 5000,
      });
    } catch (error) {
      throw new StoreOpenError(what, (error as Error).message);
    }
    // A connection the server drops is reported as an "error" event — on
    // the pool while the client is idle, on the client while a query runs
    // (also inside pool.query) — and an event nobody listens to ends the
    // process (seen with pg_terminate_backend under load). The query that
    // was running rejects as well, and that is where we handle it.
    pool.on("error", () => {});
    pool.on("connect", (client) => client.on("error", () => {}));
    const deadline = Date.now() + (options.connectTimeoutMs ?? 10_000);
    for (let attempt = 1;; attempt++) {
      try {
        await migrate(pool, schema);
        break;
      } catch (error) {
        // A database that is starting or restarting answers soon: wait for
        // it, 100 ms doubling to 2 s, within the bound.
        const waitMs = CONNECT_RETRY(attempt);
        if (isUnavailable(error) && Date.now() + waitMs < deadline) {
          await new Promise((resolve) => setTimeout(resolve, waitMs));
          continue;
        }
        await pool.end().catch(() => {});
        if (error instanceof StoreOpenError) throw error;
        const gaveUp = isUnavailable(error)
          ? ` (still unreachable after ${attempt} attempts)`
          : "";
        throw new StoreOpenError(what, (error as Error).message + gaveUp);
      }
    }
    return new PostgresStore(pool, schema, options.now ?? Date.now);
  }

  create(input: NewOrder, options: CreateOptions = {}): Promise<CreateResult> {
    return this.#run(async (pool) => {
      const now = this.#now();
      const key = options.idempotencyKey ?? null;
      const timeline: TimelineEntry[] = [{
        at: now,
        type: "status",
        status: "pending",
      }];
      // ON CONFLICT: two requests with one key race to insert; the loser
      // inserts nothing and reads the winner's order below.
      const inserted = await pool.query<OrderRow>(
        `INSERT INTO ${this.#table}
           (id, customer_id, restaurant_id, items, status, created_at,
            updated_at, attempts, failure_reason, cancel_requested, timeline,
            idempotency_key)
         VALUES ($1, $2, $3, $4::jsonb, 'pending', $5, $5, 0, NULL, false,
           $6::jsonb, $7)
         ON CONFLICT (idempotency_key) DO NOTHING
         RETURNING *`,
        [
          this.#newId(),
          input.customer_id,
          input.restaurant_id,
          JSON.stringify(input.items),
          now,
          JSON.stringify(timeline),
          key,
        ],
      );
      const created = inserted.rows[0];
      if (created) return { order: toOrder(created), created: true };
      const order = (await this.#selectOne(pool, "idempotency_key", key!))!;
      if (!sameNewOrder(order, input)) {
        throw new IdempotencyConflictError(key!, order.id);
      }
      return { order, created: false };
    });
  }

  get(id: string): Promise<Order | undefined> {
    return this.#run((pool) => this.#selectOne(pool, "id", id));
  }

  getByIdempotencyKey(key: string): Promise<Order | undefined> {
    return this.#run((pool) => this.#selectOne(pool, "idempotency_key", key));
  }

  /** The order whose `column` (a unique one) holds `value`, if any. */
  async #selectOne(
    pool: pg.Pool,
    column: "id" | "idempotency_key",
    value: string,
  ): Promise<Order | undefined> {
    const result = await pool.query<OrderRow>(
      `SELECT * FROM ${this.#table} WHERE ${column} = $1`,
      [value],
    );
    const row = result.rows[0];
    return row && toOrder(row);
  }

  list(options: ListOptions): Promise<ListPage> {
    return this.#run(async (pool) => {
      const result = await pool.query<OrderRow>(
        `SELECT * FROM ${this.#table}
         WHERE ($1::text IS NULL OR id > $1)
           AND ($2::text IS NULL OR status = $2)
         ORDER BY id
         LIMIT $3`,
        [options.after ?? null, options.status ?? null, options.limit + 1],
      );
      const rows = result.rows;
      return {
        orders: rows.slice(0, options.limit).map(toOrder),
        hasMore: rows.length > options.limit,
      };
    });
  }

  transition(id: string, change: Transition): Promise<Order> {
    return this.#run((pool) =>
      inTransaction(pool, async (client) => {
        // Race: see the class comment; the row lock serialises changes.
        const result = await client.query<OrderRow>(
          `SELECT * FROM ${this.#table} WHERE id = $1 FOR UPDATE`,
          [id],
        );
        const row = result.rows[0];
        if (!row) throw new OrderNotFoundError(id);
        const current = toOrder(row);
        const refusal = refuseTransition(id, {
          status: current.status,
          cancelRequested: current.cancel_requested,
        }, change);
        if (refusal) throw refusal;
        const next = applyTransition(current, change, this.#now());
        await client.query(
          `UPDATE ${this.#table} SET status = $2, updated_at = $3,
             attempts = $4, failure_reason = $5, cancel_requested = $6,
             timeline = $7::jsonb
           WHERE id = $1`,
          [
            id,
            next.status,
            next.updated_at,
            next.attempts,
            next.failure_reason,
            next.cancel_requested,
            JSON.stringify(next.timeline),
          ],
        );
        return next;
      })
    );
  }

  async close(): Promise<void> {
    await this.#pool.end();
  }

  /** Runs a query, turning a lost or refused database into `StoreUnavailableError`. */
  async #run<T>(query: (pool: pg.Pool) => Promise<T>): Promise<T> {
    try {
      return await query(this.#pool);
    } catch (error) {
      if (isUnavailable(error)) {
        throw new StoreUnavailableError((error as Error).message);
      }
      throw error;
    }
  }
}

/**
 * Runs `body` in a transaction on one pooled connection: COMMIT when it
 * returns, ROLLBACK when it throws. A connection that failed is destroyed
 * rather than returned to the pool.
 */
async function inTransaction<T>(
  pool: pg.Pool,
  body: (client: pg.PoolClient) => Promise<T>,
): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  // A checked-out client reports a dropped connection as an "error" event;
  // with no listener that event ends the process (the pool listens only
  // while a client is idle). The failed query rejects as well.
  const onError = (error: Error) => broken = error;
  client.on("error", onError);
  try {
    await client.query("BEGIN");
    const result = await body(client);
    await client.query("COMMIT");
    return result;
  } catch (error) {
    if (isUnavailable(error)) broken = error as Error;
    else await client.query("ROLLBACK").catch(() => {});
    throw error;
  } finally {
    client.off("error", onError);
    client.release(broken);
  }
}

async function migrate(pool: pg.Pool, schema: string): Promise<void> {
  const quoted = `"${schema}"`;
  await inTransaction(pool, async (client) => {
    // Instances that start together take turns; the lock ends with the
    // transaction.
    await client.query("SELECT pg_advisory_xact_lock(hashtext($1))", [
      `order-service:${schema}`,
    ]);
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${quoted}`);
    await client.query(
      `CREATE TABLE IF NOT EXISTS ${quoted}.schema_version (version integer NOT NULL)`,
    );
    const result = await client.query<{ version: number }>(
      `SELECT version FROM ${quoted}.schema_version`,
    );
    const row = result.rows[0];
    const version = row?.version ?? 0;
    if (version > POSTGRES_SCHEMA_VERSION) {
      throw new StoreOpenError(
        `the PostgreSQL schema "${schema}"`,
        `its version ${version} is newer than this release understands (${POSTGRES_SCHEMA_VERSION}); upgrade order-service`,
      );
    }
    if (version === POSTGRES_SCHEMA_VERSION) return;
    await client.query(`
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
    await client.query(
      `CREATE INDEX orders_status_id ON ${quoted}.orders (status, id)`,
    );
    await client.query(
      row
        ? `UPDATE ${quoted}.schema_version SET version = $1`
        : `INSERT INTO ${quoted}.schema_version VALUES ($1)`,
      [POSTGRES_SCHEMA_VERSION],
    );
  });
}
