/**
 * The PostgreSQL order store: one database that any number of instances
 * share. Each instance claims the orders it holds, with a fencing token;
 * a heartbeat keeps its lease, and when the lease lapses another instance
 * rescues its orders. Every change writes an event row in its own
 * transaction, which every instance reads (see `postgres_feed.ts`).
 *
 * On node-postgres (`pg`): the `postgres` client (3.4.9) crashed the whole
 * process under Deno when the database cut a connection while a write was
 * queued (porsager/postgres#1154, #1208); `pg` reports the same event as a
 * catchable error (SQLSTATE 57P01), checked by terminating every backend
 * under load.
 *
 * @module
 */

// @ts-types="npm:@types/pg@8.23.1"
import pg from "pg";
import { doublingDelay } from "../async/backoff.ts";
import {
  ClaimLostError,
  OrderNotFoundError,
  StoreOpenError,
} from "../orders/errors.ts";
import {
  isTerminal,
  type NewOrder,
  type Order,
  type OrderStatus,
  zeroStatusCounts,
} from "../orders/order.ts";
import type {
  ControlRecords,
  CreateOptions,
  CreateResult,
  ListOptions,
  ListPage,
  OrderStore,
  Transition,
} from "../orders/order_store.ts";
import { refuseTransition } from "../orders/transition.ts";
import { PostgresCoordination } from "./postgres_coordination.ts";
import {
  isInstanceId,
  isSchemaName,
  isUnavailable,
  orUnavailable,
  quietPool,
  redactUrl,
} from "./postgres_connection.ts";
import { PostgresFeed } from "./postgres_feed.ts";
import { PostgresListener } from "./postgres_listener.ts";
import { type OrderRow, toOrder } from "./postgres_rows.ts";
import { eventsChannel, migrate, workChannel } from "./postgres_schema.ts";
import {
  controlInsertStatement,
  controlReadStatement,
  controlWriteStatement,
  countByStatusStatement,
  listStatement,
  orderWithClaimStatement,
  selectOneStatement,
  WRITE_SESSION_SETTINGS,
} from "./postgres_sql.ts";
import { PostgresWriteBatcher } from "./postgres_write_batcher.ts";
import { PostgresWebhooks } from "./postgres_webhooks.ts";

export { EVENT_RETENTION } from "./postgres_coordination.ts";
export {
  isPostgresUrl,
  isSchemaName,
  redactUrl,
} from "./postgres_connection.ts";
export { POSTGRES_SCHEMA_VERSION } from "./postgres_schema.ts";
export { WRITE_SESSION_SETTINGS, writeStatement } from "./postgres_sql.ts";

// A database that does not answer at start: 100 ms doubling to 2 s.
const CONNECT_RETRY = doublingDelay(100, 2000);

/** Options for {@linkcode PostgresStore.open}. */
export interface PostgresStoreOptions {
  /** The schema holding the tables (default `order_service`). */
  schema?: string;
  /** Connections in the pool (default 10); the listener has one more. */
  poolSize?: number;
  /**
   * How long start-up keeps trying a database it cannot reach (refused,
   * timed out, shutting down), in milliseconds (default 10 000). A wrong
   * password or a missing database fails at once.
   */
  connectTimeoutMs?: number;
  /** This instance's id (default: generated, unique per start). */
  instanceId?: string;
  /**
   * How long an instance may miss heartbeats before another rescues its
   * orders, in milliseconds (default 5000).
   */
  leaseMs?: number;
  /** The clock, in epoch milliseconds (injected by tests). */
  now?: () => number;
}

/** A fresh instance id: the process id and 8 random hex digits. */
export function generateInstanceId(): string {
  return `i${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
}

/**
 * Orders in PostgreSQL. Every change is one conditional `UPDATE` whose
 * conditions are re-checked under the row's lock: two changes that both
 * expect `processing` (a cancel and a completion) cannot both apply; the
 * second waits for the first and then sees its result. Writes are batched
 * (`postgres_write_batcher.ts`); claims, the lease, rescue and the change
 * feed are its coordination (`postgres_coordination.ts`); the SQL lives in
 * `postgres_sql.ts`.
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
  // The write statements' own connections (see WRITE_SESSION_SETTINGS).
  readonly #writePool: pg.Pool;
  readonly #leasePool: pg.Pool;
  readonly #schema: string;
  readonly #table: string;
  readonly #instanceId: string;
  readonly #listener: PostgresListener;
  readonly #feed: PostgresFeed;
  readonly #claims: PostgresCoordination;
  readonly #writes: PostgresWriteBatcher;
  #closed = false;
  /** Webhook endpoints and the outbox (written by a trigger with each change). */
  readonly webhooks: PostgresWebhooks;

  private constructor(
    pools: { pool: pg.Pool; writes: pg.Pool; lease: pg.Pool },
    listenerConfig: pg.ClientConfig,
    options: {
      schema: string;
      instanceId: string;
      leaseMs: number;
      now: () => number;
    },
  ) {
    const { pool, writes, lease } = pools;
    const { schema, instanceId } = options;
    this.#pool = pool;
    this.#writePool = writes;
    this.#leasePool = lease;
    this.#schema = schema;
    this.#table = `"${schema}".orders`;
    this.#instanceId = instanceId;
    this.#listener = new PostgresListener(
      listenerConfig,
      [eventsChannel(schema), workChannel(schema)],
      {
        onNotify: (channel, payload) => {
          if (channel === workChannel(schema)) this.#claims.wake();
          else this.#feed.notified(Number(payload));
        },
        onConnect: () => {
          // What was notified while the connection was down is lost.
          this.#feed.read();
          this.#claims.wake();
        },
      },
    );
    this.#feed = new PostgresFeed(
      this.#listener,
      schema,
      instanceId,
      eventsChannel(schema),
      (text, values) => orUnavailable(() => pool.query(text, values)),
    );
    this.#claims = new PostgresCoordination(pool, lease, {
      ...options,
      changeFeed: this.#feed,
      onRescued: () => this.#feed.wrote(),
    });
    this.webhooks = new PostgresWebhooks(pool, schema, instanceId);
    this.#writes = new PostgresWriteBatcher(writes, {
      table: this.#table,
      instanceId,
      now: options.now,
      byIdempotencyKey: (key) => this.#selectOne("idempotency_key", key),
      onInserted: (order) => {
        this.#claims.hold(order.id, "1");
        this.#feed.remember(order);
      },
      onAnswered: (order) => this.#feed.remember(order),
      onWrote: () => this.#feed.wrote(),
      onUncertain: () => this.#claims.markUncertain(),
    });
  }

  /** This instance's id, as other instances see it. */
  get instanceId(): string {
    return this.#instanceId;
  }

  /** Pause and bulk retry keys, seen by every instance on the schema. */
  readonly control: ControlRecords = {
    read: (name) =>
      orUnavailable(async () => {
        const result = await this.#pool.query<{ value: string }>(
          controlReadStatement(this.#schema),
          [name],
        );
        return result.rows[0]?.value;
      }),
    write: (name, value) =>
      orUnavailable(async () => {
        await this.#pool.query(controlWriteStatement(this.#schema), [
          name,
          value,
        ]);
      }),
    writeIfAbsent: (name, value) =>
      orUnavailable(async () => {
        const inserted = await this.#pool.query(
          controlInsertStatement(this.#schema),
          [name, value],
        );
        if (inserted.rowCount === 1) return undefined;
        // Records are never deleted: the one that refused the insert is there.
        const held = await this.#pool.query<{ value: string }>(
          controlReadStatement(this.#schema),
          [name],
        );
        return held.rows[0]!.value;
      }),
  };

  /** Claims, the lease, rescue and every instance's changes. */
  get coordination(): PostgresCoordination {
    return this.#claims;
  }

  /**
   * Connects, creates or migrates the schema under an advisory lock (so
   * that instances starting together do not race), and registers this
   * instance; orders a previous run under the same instance id still
   * claimed are handed back first.
   *
   * @throws {StoreOpenError} when the database cannot be reached, refuses
   * the login, or holds a schema newer than this release.
   */
  static async open(
    url: string,
    options: PostgresStoreOptions = {},
  ): Promise<PostgresStore> {
    const schema = options.schema ?? "order_service";
    const instanceId = options.instanceId ?? generateInstanceId();
    const leaseMs = options.leaseMs ?? 5000;
    const what = `the PostgreSQL store ${redactUrl(url)}`;
    if (!isSchemaName(schema)) {
      throw new StoreOpenError(
        what,
        `schema name "${schema}" must be 1–56 of a-z, 0-9 and _`,
      );
    }
    if (!isInstanceId(instanceId)) {
      throw new StoreOpenError(
        what,
        `instance id "${instanceId}" must be 1–64 of A-Z, a-z, 0-9, ".", "_" and "-"`,
      );
    }
    if (!Number.isInteger(leaseMs) || leaseMs < 100) {
      throw new StoreOpenError(what, `lease ${leaseMs} ms is below 100 ms`);
    }
    const listenerConfig: pg.ClientConfig = {
      connectionString: url,
      connectionTimeoutMillis: 5000,
      // pg_stat_activity then tells which instance holds a connection.
      application_name: `order-service listener ${instanceId}`,
    };
    const poolConfig: pg.PoolConfig = {
      ...listenerConfig,
      application_name: `order-service ${instanceId}`,
      // A database that stops answering (not closing) fails a query
      // after 5 s instead of holding its request for ever: 503.
      query_timeout: 5000,
      // The event trigger records which instance made each change.
      options: `-c order_service.instance=${instanceId}`,
    };
    let pool: pg.Pool;
    let writes: pg.Pool;
    let lease: pg.Pool;
    try {
      pool = quietPool({ ...poolConfig, max: options.poolSize ?? 10 });
      // Two: one write statement runs at a time, and a refused one is
      // split in two (see #send).
      writes = quietPool({
        ...poolConfig,
        application_name: `order-service writes ${instanceId}`,
        max: 2,
        options: `${poolConfig.options} ${WRITE_SESSION_SETTINGS}`,
      });
      lease = quietPool({
        ...poolConfig,
        application_name: `order-service lease ${instanceId}`,
        max: 1,
      });
    } catch (error) {
      throw new StoreOpenError(what, (error as Error).message);
    }
    const store = new PostgresStore({ pool, writes, lease }, listenerConfig, {
      schema,
      instanceId,
      leaseMs,
      now: options.now ?? Date.now,
    });
    const deadline = Date.now() + (options.connectTimeoutMs ?? 10_000);
    for (let attempt = 1;; attempt++) {
      try {
        await migrate(pool, schema);
        await store.#claims.register(true);
        await store.webhooks.releaseOwn();
        await store.#listener.connect();
        break;
      } catch (error) {
        // A database that is starting or restarting answers soon: wait for
        // it, 100 ms doubling to 2 s, within the bound.
        const waitMs = CONNECT_RETRY(attempt);
        if (isUnavailable(error) && Date.now() + waitMs < deadline) {
          await new Promise((resolve) => setTimeout(resolve, waitMs));
          continue;
        }
        await store.#listener.close();
        await pool.end().catch(() => {});
        await writes.end().catch(() => {});
        await lease.end().catch(() => {});
        if (error instanceof StoreOpenError) throw error;
        const gaveUp = isUnavailable(error)
          ? ` (still unreachable after ${attempt} attempts)`
          : "";
        throw new StoreOpenError(what, (error as Error).message + gaveUp);
      }
    }
    return store;
  }

  /**
   * Inserts the order already claimed by this instance, batched with the
   * other writes (see `postgres_write_batcher.ts`); ON CONFLICT on the
   * idempotency key makes two requests with one key, on one instance or
   * two, create one order.
   */
  create(input: NewOrder, options: CreateOptions = {}): Promise<CreateResult> {
    return this.#writes.create(input, options.idempotencyKey ?? null);
  }

  get(id: string): Promise<Order | undefined> {
    return orUnavailable(() => this.#selectOne("id", id));
  }

  getByIdempotencyKey(key: string): Promise<Order | undefined> {
    return orUnavailable(() => this.#selectOne("idempotency_key", key));
  }

  /** The order whose `column` (a unique one) holds `value`, if any. */
  async #selectOne(
    column: "id" | "idempotency_key",
    value: string,
  ): Promise<Order | undefined> {
    const result = await this.#pool.query<OrderRow>(
      selectOneStatement(this.#table, column),
      [value],
    );
    const row = result.rows[0];
    return row && toOrder(row);
  }

  list(options: ListOptions): Promise<ListPage> {
    return orUnavailable(async () => {
      const { text, values } = listStatement(this.#table, options);
      const result = await this.#pool.query<OrderRow>(text, values);
      const rows = result.rows;
      return {
        orders: rows.slice(0, options.limit).map(toOrder),
        hasMore: rows.length > options.limit,
      };
    });
  }

  /**
   * Conditional in the database: the conditions are in an UPDATE's WHERE
   * clause and the new values in its SET, and the changes (and creates)
   * queued while one statement runs go together in the next (one round
   * trip and one commit for all; an order appears at most once per
   * statement). The
   * row lock of the UPDATE serialises racing changes: the second re-checks
   * the conditions against the first's result. The fence (`claimed`) is
   * one more condition under the same lock, so no rescue slips in
   * between. Only a change that matched nothing costs a second query, to
   * find out why.
   */
  async transition(id: string, change: Transition): Promise<Order> {
    for (let tries = 1;; tries++) {
      const epoch = this.#claims.epochOf(id);
      const order = await this.#writes.change(id, change, epoch);
      if (order) {
        // A finished order needs no claim (the row's ended with it), and
        // none can follow: orders are claimed only while pending. So by id
        // alone, also when an unclaimed change (a cancel) finished it.
        if (isTerminal(order.status)) this.#claims.forgetFinished(id);
        return order;
      }
      const outcome = await this.#whyNot(id, change, epoch);
      if (outcome instanceof Error) throw outcome;
      if (outcome) return outcome;
      // The order changed between the two queries so that it matches now.
      if (tries === 3) {
        throw new Error(
          `Cannot ${change.action} order "${id}": it keeps changing`,
        );
      }
    }
  }

  /** Why `change` matched nothing: the error to throw, or none if it would match now. */
  async #whyNot(
    id: string,
    change: Transition,
    epoch: string | null,
  ): Promise<Error | Order | undefined> {
    const result = await orUnavailable(() =>
      this.#pool.query<OrderRow & { last_change: string | null }>(
        orderWithClaimStatement(this.#table),
        [id],
      )
    );
    const row = result.rows[0];
    if (!row) return new OrderNotFoundError(id);
    // A retry of a change whose first try committed unheard: done already.
    if (change.token !== undefined && row.last_change === change.token) {
      return toOrder(row);
    }
    // The fence before the status: an unfinished order that another claim
    // holds was taken from us (rescued, perhaps started again elsewhere),
    // whatever status it has now. A finished one is judged by its status.
    if (
      change.claimed && !isTerminal(row.status) &&
      (row.claimed_by !== this.#instanceId || row.claim_epoch !== epoch)
    ) {
      this.#claims.forget(id, epoch);
      return new ClaimLostError(id, change.action);
    }
    return refuseTransition(id, {
      status: row.status,
      cancelRequested: row.cancel_requested,
    }, change);
  }

  countByStatus(): Promise<Record<OrderStatus, number>> {
    return orUnavailable(async () => {
      const counts = zeroStatusCounts();
      const result = await this.#pool.query<{ status: OrderStatus; n: string }>(
        countByStatusStatement(this.#table),
      );
      for (const row of result.rows) counts[row.status] = Number(row.n);
      return counts;
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#feed.close();
    await this.#listener.close();
    try {
      await this.#claims.deregister();
    } catch {
      // The database is gone: the lease lapses, and another instance, or
      // the next start, rescues what this one held.
    }
    await this.#pool.end();
    await this.#writePool.end();
    await this.#leasePool.end();
  }
}
