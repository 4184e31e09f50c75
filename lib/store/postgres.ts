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
  IdempotencyConflictError,
  OrderNotFoundError,
  StoreOpenError,
  StoreUnavailableError,
} from "../orders/errors.ts";
import {
  canTransition,
  isTerminal,
  type NewOrder,
  newPendingOrder,
  type Order,
  type OrderStatus,
  sameNewOrder,
  type TimelineEntry,
  zeroStatusCounts,
} from "../orders/order.ts";
import { createOrderIdFactory } from "../orders/order_id.ts";
import type {
  CreateOptions,
  CreateResult,
  InstanceInfo,
  InstanceStatus,
  ListOptions,
  ListPage,
  OrderStore,
  Transition,
} from "../orders/order_store.ts";
import { refuseTransition } from "../orders/transition.ts";
import {
  isInstanceId,
  isSchemaName,
  isUnavailable,
  orUnavailable,
  redactUrl,
} from "./postgres_connection.ts";
import { PostgresFeed } from "./postgres_feed.ts";
import { PostgresListener } from "./postgres_listener.ts";
import { eventsChannel, migrate, workChannel } from "./postgres_schema.ts";

export {
  isPostgresUrl,
  isSchemaName,
  redactUrl,
} from "./postgres_connection.ts";
export { POSTGRES_SCHEMA_VERSION } from "./postgres_schema.ts";

// A database that does not answer at start: 100 ms doubling to 2 s.
const CONNECT_RETRY = doublingDelay(100, 2000);

/** Events kept in the table; older ones are deleted by the rescuing instance. */
export const EVENT_RETENTION = 100_000;

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

/** An orders row: the order's fields, with bigint times as pg returns them. */
type OrderRow = Omit<Order, "created_at" | "updated_at"> & {
  created_at: string;
  updated_at: string;
  claimed_by: string | null;
  claim_epoch: string;
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
 * Runs `query`; a deadlock (SQLSTATE 40P01), which rolled the statement
 * back whole, runs it again, up to 5 times. A lost database becomes
 * `StoreUnavailableError`.
 */
async function retryDeadlock<T>(query: () => Promise<T>): Promise<T> {
  for (let attempt = 1;; attempt++) {
    try {
      return await orUnavailable(query);
    } catch (error) {
      if ((error as { code?: string }).code !== "40P01" || attempt === 5) {
        throw error;
      }
    }
  }
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** A create waiting for the next multi-row insert. */
interface QueuedCreate {
  input: NewOrder;
  key: string | null;
  result: PromiseWithResolvers<CreateResult>;
}

/** Orders inserted at most per statement. */
const CREATE_BATCH = 200;

/** A transition waiting for the next write. */
interface QueuedChange {
  id: string;
  change: Transition;
  /** This instance's claim epoch when the change was asked for. */
  epoch: string | null;
  /** The order after the change, or `undefined` when it matched nothing. */
  result: PromiseWithResolvers<Order | undefined>;
}

/**
 * A pool whose connections' "error" events are heard. A connection the
 * server drops is reported as an "error" event — on the pool while the
 * client is idle, on the client while a query runs (also inside
 * pool.query) — and an event nobody listens to ends the process (seen with
 * pg_terminate_backend under load). The query that was running rejects as
 * well, and that is where we handle it.
 */
function quietPool(config: pg.PoolConfig): pg.Pool {
  const pool = new pg.Pool(config);
  pool.on("error", () => {});
  pool.on("connect", (client) => client.on("error", () => {}));
  return pool;
}

/** Changes applied at most per statement. */
const CHANGE_BATCH = 200;

/**
 * Write statements in flight at once. One: with two, each carried half as
 * many rows for the same throughput (measured), and concurrent commits
 * contend for the WAL.
 */
const STATEMENTS_AT_ONCE = 1;

/**
 * The write statement's name: prepared once per connection of the write
 * pool, then only bound and executed. Parsing, analysing and planning it
 * was a quarter of PostgreSQL's CPU under load (perf), and half of a
 * 30-order statement's time alone (6.5 → 3.5 ms, measured).
 */
const WRITE_STATEMENT = "order_service_write";

/**
 * Settings of the write pool's sessions. A prepared statement soon runs a
 * generic plan, made once and kept while the table grows; made while the
 * table was young, that plan scanned the whole table for every change (seen
 * with auto_explain: a sequential scan costed at 14 for 25,000 orders). The
 * write statement reaches orders only by id, so with sequential scans off
 * its plan is an index scan however small the table looked.
 */
export const WRITE_SESSION_SETTINGS = "-c enable_seqscan=off";

/** The columns an API order has (not the claim's). */
const ORDER_COLUMNS = `id, customer_id, restaurant_id, items, status,
  created_at, updated_at, attempts, failure_reason, cancel_requested, timeline`;

/**
 * The statement that writes a batch: the creates' INSERT and the changes'
 * UPDATE as two parts of one query over `table` (see `#write`).
 */
export function writeStatement(table: string): string {
  return `WITH created AS (
           INSERT INTO ${table}
             (id, customer_id, restaurant_id, items, status, created_at,
              updated_at, attempts, failure_reason, cancel_requested, timeline,
              idempotency_key, claimed_by, claim_epoch)
           SELECT r.id, r.customer_id, r.restaurant_id, r.items, 'pending', $2,
             $2, 0, NULL, false, $3::jsonb, r.key, $4, 1
           FROM jsonb_to_recordset($1::jsonb)
             AS r(id text, customer_id text, restaurant_id text, items jsonb,
                  key text)
           ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL
             DO NOTHING
           RETURNING NULL::integer AS i, id, NULL::text, NULL::text,
             NULL::jsonb, NULL::text, NULL::bigint, NULL::bigint,
             NULL::integer, NULL::text, NULL::boolean, NULL::jsonb
         ), changed AS (
           UPDATE ${table} AS o SET
             status = coalesce(c.to, o.status),
             updated_at = greatest($2::bigint, o.created_at),
             attempts = CASE WHEN c.attempts IS NOT NULL THEN c.attempts
               WHEN c.increment THEN o.attempts + 1 ELSE o.attempts END,
             failure_reason = CASE WHEN c.set_reason THEN c.reason
               ELSE o.failure_reason END,
             cancel_requested = coalesce(c.cancel, o.cancel_requested),
             timeline = o.timeline
               || coalesce((SELECT jsonb_agg(entry || jsonb_build_object(
                    'at', greatest($2::bigint, o.created_at)))
                  FROM jsonb_array_elements(c.append) AS entry), '[]')
               || CASE WHEN c.to IS NOT NULL AND c.to <> o.status
                  THEN jsonb_build_array(jsonb_build_object(
                    'at', greatest($2::bigint, o.created_at),
                    'type', 'status', 'status', c.to))
                  ELSE '[]' END,
             claimed_by = CASE WHEN c.finishes THEN NULL ELSE o.claimed_by END,
             last_change = c.token
           FROM jsonb_to_recordset($5::jsonb) AS c(
             i integer, id text, "to" text, increment boolean,
             attempts integer, set_reason boolean, reason text,
             cancel boolean, append jsonb, finishes boolean, "from" text[],
             if_cancel boolean, claimed boolean, epoch bigint, token text)
           WHERE o.id = c.id AND o.id = ANY($6::text[])
             AND o.status = ANY(c."from")
             AND (c.if_cancel IS NULL OR o.cancel_requested = c.if_cancel)
             AND (NOT c.claimed
               OR (o.claimed_by = $4 AND o.claim_epoch = c.epoch))
             AND (c.token IS NULL OR o.last_change IS DISTINCT FROM c.token)
           RETURNING c.i, o.id, o.customer_id, o.restaurant_id, o.items,
             o.status, o.created_at, o.updated_at, o.attempts,
             o.failure_reason, o.cancel_requested, o.timeline
         )
         -- changed first: a UNION takes its column names from its first part.
         SELECT * FROM changed UNION ALL SELECT * FROM created`;
}

/**
 * Orders in PostgreSQL. Every change is one conditional `UPDATE` whose
 * conditions are re-checked under the row's lock: two changes that both
 * expect `processing` (a cancel and a completion) cannot both apply; the
 * second waits for the first and then sees its result.
 *
 * **Claims.** `claimed_by` names the instance that holds an order (queued
 * or processing) and `claim_epoch`, the fencing token, grows at every
 * claim and every rescue. This instance remembers the epoch of each claim
 * it took; a change marked `claimed` applies only while the row still
 * shows this instance and that epoch.
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
  readonly #writes: pg.Pool;
  // The heartbeat's own connection: no query of the pool's, nor the event
  // feed's reads on the listener's, can make it late, and a late heartbeat
  // gets a live instance presumed dead and its running orders run twice.
  readonly #lease: pg.Pool;
  readonly #schema: string;
  readonly #table: string;
  readonly #writeSql: string;
  readonly #now: () => number;
  readonly #newId = createOrderIdFactory();
  readonly #instanceId: string;
  readonly #leaseMs: number;
  readonly #listener: PostgresListener;
  readonly #feed: PostgresFeed;
  // This instance's claims: order id → the claim's epoch. An entry is
  // removed only together with the epoch it was taken at (#forget): a
  // stale worker's refusal must not erase a newer claim of the same order.
  readonly #claims = new Map<string, string>();
  readonly #wakers: Array<() => void> = [];
  // Creates and changes waiting for the next write, and whether one runs.
  #creates: QueuedCreate[] = [];
  #changes: QueuedChange[] = [];
  #writing = 0;
  // Whether a write may have committed without our hearing (see #rescue).
  #uncertain = false;
  #closed = false;

  private constructor(
    pool: pg.Pool,
    writes: pg.Pool,
    lease: pg.Pool,
    listenerConfig: pg.ClientConfig,
    schema: string,
    instanceId: string,
    leaseMs: number,
    now: () => number,
  ) {
    this.#pool = pool;
    this.#writes = writes;
    this.#lease = lease;
    this.#schema = schema;
    this.#table = `"${schema}".orders`;
    this.#writeSql = writeStatement(this.#table);
    this.#instanceId = instanceId;
    this.#leaseMs = leaseMs;
    this.#now = now;
    this.#listener = new PostgresListener(
      listenerConfig,
      [eventsChannel(schema), workChannel(schema)],
      {
        onNotify: (channel, payload) => {
          if (channel === workChannel(schema)) this.#wake();
          else this.#feed.notified(Number(payload));
        },
        onConnect: () => {
          // What was notified while the connection was down is lost.
          this.#feed.read();
          this.#wake();
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
  }

  /** This instance's id, as other instances see it. */
  get instanceId(): string {
    return this.#instanceId;
  }

  /** Every instance's changes. */
  get changeFeed(): PostgresFeed {
    return this.#feed;
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
    const store = new PostgresStore(
      pool,
      writes,
      lease,
      listenerConfig,
      schema,
      instanceId,
      leaseMs,
      options.now ?? Date.now,
    );
    const deadline = Date.now() + (options.connectTimeoutMs ?? 10_000);
    for (let attempt = 1;; attempt++) {
      try {
        await migrate(pool, schema);
        await store.#register(true);
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

  create(input: NewOrder, options: CreateOptions = {}): Promise<CreateResult> {
    const pending = Promise.withResolvers<CreateResult>();
    this.#creates.push({
      input,
      key: options.idempotencyKey ?? null,
      result: pending,
    });
    this.#writeQueued();
    return pending.promise;
  }

  /**
   * Writes every queued create and change in one statement (an INSERT and
   * an UPDATE, each over many rows, as two parts of one query); what
   * arrives meanwhile waits for the next. Under load a statement then
   * carries many orders and changes with one round trip and one commit —
   * one WAL sync — for all (measured: see the README); alone, a write
   * waits for nothing. Each caller is answered only after the commit.
   */
  #writeQueued(): void {
    if (this.#writing >= STATEMENTS_AT_ONCE) return;
    const creates = this.#creates.splice(0, CREATE_BATCH);
    // One change per order per statement; the rest wait, in order.
    const changes: QueuedChange[] = [];
    const ids = new Set<string>();
    const later: QueuedChange[] = [];
    for (const queued of this.#changes) {
      if (changes.length < CHANGE_BATCH && !ids.has(queued.id)) {
        ids.add(queued.id);
        changes.push(queued);
      } else later.push(queued);
    }
    this.#changes = later;
    if (creates.length === 0 && changes.length === 0) return;
    this.#writing++;
    let done = false;
    // The next statement goes out as soon as this one's answer is in,
    // before this one's callers are answered: the database works on it
    // while this thread writes their responses.
    const next = () => {
      if (done) return;
      done = true;
      this.#writing--;
      this.#writeQueued();
    };
    this.#send(creates, changes, next);
  }

  #send(
    creates: QueuedCreate[],
    changes: QueuedChange[],
    answered: () => void,
  ): void {
    this.#write(creates, changes, answered).catch((error) => {
      answered();
      if (
        creates.length > 0 && changes.length > 0 &&
        !(error instanceof StoreUnavailableError)
      ) {
        // Refused, not lost: one part's refusal must not fail the other
        // part's callers, so each goes again alone.
        this.#send(creates, [], () => {});
        this.#send([], changes, () => {});
        return;
      }
      // The insert may have committed with its answer lost: orders claimed
      // here that no request was told of. The next rescue hands them back.
      if (creates.length > 0 && error instanceof StoreUnavailableError) {
        this.#uncertain = true;
      }
      for (const { result } of creates) result.reject(error);
      for (const { result } of changes) result.reject(error);
    });
  }

  async #write(
    creates: QueuedCreate[],
    changes: QueuedChange[],
    answered: () => void,
  ): Promise<void> {
    const now = this.#now();
    const inserts = creates.map(({ input, key }) => ({
      id: this.#newId(),
      customer_id: input.customer_id,
      restaurant_id: input.restaurant_id,
      items: input.items,
      key,
    }));
    const timeline: TimelineEntry[] = [{
      at: now,
      type: "status",
      status: "pending",
    }];
    const createdIds = inserts.map((row) => row.id);
    // Keys in one order, so that two instances' batches wait for each
    // other's unique-index entries in the same order instead of deadlocking.
    inserts.sort((a, b) => compare(a.key ?? "", b.key ?? ""));
    const updates = changes.map(({ id, change, epoch }, index) => {
      const to = change.to;
      const set = change.set;
      return {
        i: index,
        id,
        to: to ?? null,
        increment: change.incrementAttempts ?? false,
        attempts: set?.attempts ?? null,
        set_reason: set?.failure_reason !== undefined,
        reason: set?.failure_reason ?? null,
        cancel: set?.cancel_requested ?? null,
        append: change.append ?? [],
        finishes: to !== undefined && isTerminal(to),
        // The statuses from which the state machine allows this change.
        from: change.from.filter((status) =>
          to === undefined || to === status || canTransition(status, to)
        ),
        if_cancel: change.cancelRequested ?? null,
        claimed: change.claimed ?? false,
        epoch,
        token: change.token ?? null,
      };
    });
    // Rows locked in id order, which makes deadlocks (two instances'
    // statements locking the same rows in another order, as a cancel on
    // one for an order the other processes) rarer; PostgreSQL rolls a
    // deadlocked statement back whole, so it is safe to run again.
    updates.sort((a, b) => compare(a.id, b.id));
    // New orders are claimed by this instance as they are inserted: they
    // go straight into this instance's queue, with no second round trip.
    // ON CONFLICT: two requests with one key race to insert (on one
    // instance or two, or in one batch); the loser inserts nothing and
    // reads the winner's order below.
    // A change's conditions are in the UPDATE's WHERE and its new values
    // in its SET. `o.id = ANY($6)` repeats the join's ids as a list the
    // planner can count: jsonb_to_recordset is always guessed at 100 rows,
    // and against a young table (or one never analysed: autovacuum off)
    // that guess made it hash-join over a sequential scan of every order,
    // for every worker change (seen with auto_explain: 3–6 ms a statement
    // at 15,000 orders). The two parts see the same snapshot, so a change
    // never meets an order inserted in the same statement (none is asked
    // for: a change waits for its order's create to be answered).
    const result = await retryDeadlock(() =>
      this.#writes.query<OrderRow & { i: number | null }>({
        name: WRITE_STATEMENT,
        text: this.#writeSql,
        values: [
          JSON.stringify(inserts),
          now,
          JSON.stringify(timeline),
          this.#instanceId,
          JSON.stringify(updates),
          updates.map((row) => row.id),
        ],
      })
    );
    answered();
    if (result.rows.length > 0) this.#feed.wrote();
    const inserted = new Set<string>();
    const applied = new Map<number, OrderRow>();
    for (const row of result.rows) {
      if (row.i === null) inserted.add(row.id);
      else applied.set(row.i, row);
    }
    for (const [index, { result: answer }] of changes.entries()) {
      const row = applied.get(index);
      const order = row && toOrder(row);
      if (order) this.#feed.remember(order);
      answer.resolve(order);
    }
    await Promise.all(creates.map(async ({ input, key, result }, index) => {
      const id = createdIds[index]!;
      if (inserted.has(id)) {
        this.#claims.set(id, "1");
        // Built here, not read back: the row holds exactly what was sent.
        const order = newPendingOrder(id, input, now);
        this.#feed.remember(order);
        result.resolve({ order, created: true });
        return;
      }
      try {
        const order = (await orUnavailable(() =>
          this.#selectOne("idempotency_key", key!)
        ))!;
        if (!sameNewOrder(order, input)) {
          throw new IdempotencyConflictError(key!, order.id);
        }
        result.resolve({ order, created: false });
      } catch (error) {
        result.reject(error);
      }
    }));
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
      `SELECT ${ORDER_COLUMNS} FROM ${this.#table} WHERE ${column} = $1`,
      [value],
    );
    const row = result.rows[0];
    return row && toOrder(row);
  }

  list(options: ListOptions): Promise<ListPage> {
    return orUnavailable(async () => {
      const result = await this.#pool.query<OrderRow>(
        `SELECT ${ORDER_COLUMNS} FROM ${this.#table}
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
      const epoch = this.#claims.get(id) ?? null;
      const pending = Promise.withResolvers<Order | undefined>();
      this.#changes.push({ id, change, epoch, result: pending });
      this.#writeQueued();
      const order = await pending.promise;
      if (order) {
        // A finished order needs no claim (the row's ended with it), and
        // none can follow: orders are claimed only while pending. So by id
        // alone, also when an unclaimed change (a cancel) finished it.
        if (isTerminal(order.status)) this.#claims.delete(id);
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
        `SELECT ${ORDER_COLUMNS}, claimed_by, claim_epoch::text, last_change
         FROM ${this.#table} WHERE id = $1`,
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
      this.#forget(id, epoch);
      return new ClaimLostError(id, change.action);
    }
    return refuseTransition(id, {
      status: row.status,
      cancelRequested: row.cancel_requested,
    }, change);
  }

  claimPending(limit: number): Promise<string[]> {
    return this.#claimPending(limit).catch((error) => {
      // As for an insert: the claim may have committed unheard.
      if (error instanceof StoreUnavailableError) this.#uncertain = true;
      throw error;
    });
  }

  #claimPending(limit: number): Promise<string[]> {
    return orUnavailable(async () => {
      // SKIP LOCKED: instances claiming at once take different orders
      // instead of queuing behind each other's row locks.
      const result = await this.#pool.query<{ id: string; epoch: string }>(
        `UPDATE ${this.#table}
         SET claimed_by = $1, claim_epoch = claim_epoch + 1
         WHERE id IN (
           SELECT id FROM ${this.#table}
           WHERE status = 'pending' AND claimed_by IS NULL
           ORDER BY id LIMIT $2
           FOR UPDATE SKIP LOCKED)
         RETURNING id, claim_epoch::text AS epoch`,
        [this.#instanceId, limit],
      );
      const ids: string[] = [];
      for (const row of result.rows) {
        this.#claims.set(row.id, row.epoch);
        ids.push(row.id);
      }
      return ids.sort();
    });
  }

  release(ids: readonly string[]): Promise<number> {
    if (ids.length === 0) return Promise.resolve(0);
    return orUnavailable(async () => {
      const result = await this.#pool.query<{ id: string; epoch: string }>(
        `UPDATE ${this.#table}
         SET claimed_by = NULL, claim_epoch = claim_epoch + 1
         WHERE id = ANY($1) AND claimed_by = $2 AND status = 'pending'
         RETURNING id, (claim_epoch - 1)::text AS epoch`,
        [ids, this.#instanceId],
      );
      for (const row of result.rows) this.#forget(row.id, row.epoch);
      if (result.rows.length > 0) {
        await this.#pool.query("SELECT pg_notify($1, '')", [
          workChannel(this.#schema),
        ]);
      }
      return result.rows.length;
    });
  }

  heartbeat(status?: InstanceStatus): Promise<boolean> {
    return orUnavailable(async () => {
      const renewed = await this.#lease.query(
        `UPDATE "${this.#schema}".instances SET heartbeat_at = now(),
           status = coalesce($2::jsonb, status)
         WHERE id = $1`,
        [this.#instanceId, status ? JSON.stringify(status) : null],
      );
      if (renewed.rowCount === 1) return true;
      // Presumed dead: another instance deleted our row and rescued what it
      // saw us hold. What we inserted or claimed since then is still marked
      // ours, and no rescue would ever touch it while we live: it is handed
      // back in the same statement that registers us again.
      await this.#register(false);
      return false;
    });
  }

  rescue(): Promise<number> {
    return this.#rescue().then((rescued) => {
      if (rescued > 0) this.#feed.wrote();
      return rescued;
    });
  }

  async #rescue(): Promise<number> {
    let handedBack = 0;
    if (this.#uncertain) {
      // Orders claimed here by a write whose answer was lost: pending,
      // claimed by this instance, yet not among the claims it knows of.
      // Nothing holds them, so they go back to the unclaimed.
      this.#uncertain = false;
      const held = [...this.#claims.keys()];
      handedBack = await this.#free(
        this.#pool,
        "claimed_by = $1 AND NOT (id = ANY($2))",
        [this.#instanceId, held],
      ).catch((error) => {
        this.#uncertain = true;
        throw error;
      });
    }
    return handedBack + await this.#rescueStopped();
  }

  /**
   * Every instance rescues, each statement on its own, with no lock held
   * between them and no transaction left open: a rescuer cut off from the
   * database mid-way holds nothing that stops another's rescue (a global
   * lock in a transaction did, until TCP gave up on the cut connection).
   * Two rescuers cannot free one order twice: the freeing UPDATE is
   * conditional, and the second re-checks its row after the first commits.
   */
  async #rescueStopped(): Promise<number> {
    const instances = `"${this.#schema}".instances`;
    await retryDeadlock(() =>
      this.#pool.query(
        `DELETE FROM ${instances}
         WHERE heartbeat_at < now() - lease_ms * interval '1 millisecond'`,
      )
    );
    // The instances that hold orders, found by hopping along the
    // claimed_by index from one holder to the next (a few lookups per
    // instance): testing every claimed order against the live ones read
    // the whole backlog every round (seen: 20 ms a second with 20,000
    // orders queued, growing with the queue).
    const stopped = await orUnavailable(() =>
      this.#pool.query<{ id: string }>(
        `WITH RECURSIVE holder AS (
           (SELECT claimed_by AS id FROM ${this.#table}
            WHERE claimed_by IS NOT NULL ORDER BY claimed_by LIMIT 1)
           UNION ALL
           SELECT (SELECT claimed_by FROM ${this.#table}
                   WHERE claimed_by > holder.id
                   ORDER BY claimed_by LIMIT 1)
           FROM holder WHERE holder.id IS NOT NULL)
         SELECT id FROM holder
         WHERE id IS NOT NULL AND id NOT IN (SELECT id FROM ${instances})`,
      )
    );
    // Orders no live instance holds: their holder stopped, or (a
    // processing order never lacks a holder otherwise) an older release
    // left them so. The holder is looked up again in the UPDATE's own
    // snapshot: one that registered again since the query above keeps
    // what it holds (it frees its own when it registers).
    const rescued = await this.#free(
      this.#pool,
      `(claimed_by = ANY($1)
         AND claimed_by NOT IN (SELECT id FROM ${instances}))
       OR (status = 'processing' AND claimed_by IS NULL)`,
      [stopped.rows.map((row) => row.id)],
    );
    await retryDeadlock(() =>
      this.#pool.query(
        `DELETE FROM "${this.#schema}".events
         WHERE seq <= (SELECT max(seq) FROM "${this.#schema}".events) - $1`,
        [EVENT_RETENTION],
      )
    );
    return rescued;
  }

  onUnclaimed(wake: () => void): void {
    this.#wakers.push(wake);
  }

  instances(): Promise<InstanceInfo[]> {
    return orUnavailable(async () => {
      const result = await this.#pool.query<
        {
          id: string;
          started: string;
          beat: string;
          status: InstanceStatus | null;
        }
      >(
        `SELECT id,
           (extract(epoch FROM started_at) * 1000)::bigint::text AS started,
           (extract(epoch FROM heartbeat_at) * 1000)::bigint::text AS beat,
           status
         FROM "${this.#schema}".instances
         WHERE heartbeat_at >= now() - lease_ms * interval '1 millisecond'
         ORDER BY id`,
      );
      return result.rows.map((row) => ({
        id: row.id,
        started_at: Number(row.started),
        heartbeat_at: Number(row.beat),
        status: row.status && Object.keys(row.status).length
          ? row.status
          : null,
      }));
    });
  }

  countByStatus(): Promise<Record<OrderStatus, number>> {
    return orUnavailable(async () => {
      const counts = zeroStatusCounts();
      const result = await this.#pool.query<{ status: OrderStatus; n: string }>(
        `SELECT status, count(*)::text AS n FROM ${this.#table} GROUP BY status`,
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
      // Nothing of ours should wait for the lease to lapse: one statement
      // hands back what we hold and deregisters us.
      await this.#free(this.#pool, "claimed_by = $1", [this.#instanceId], {
        before: `gone AS (
          DELETE FROM "${this.#schema}".instances WHERE id = $1)`,
      });
    } catch {
      // The database is gone: the lease lapses, and another instance, or
      // the next start, rescues what this one held.
    }
    await this.#pool.end();
    await this.#writes.end();
    await this.#lease.end();
  }

  /**
   * Registers this instance and, in the same statement, hands back every
   * order still marked as held by it: at start, what a previous run under
   * its id left; after it was presumed dead, what it inserted or claimed
   * meanwhile. Atomic, so no order is marked ours between the two without
   * being freed or known.
   */
  async #register(starting: boolean): Promise<void> {
    const renew = starting
      ? "heartbeat_at = now(), started_at = now(), lease_ms = excluded.lease_ms"
      : "heartbeat_at = now()";
    await this.#free(
      starting ? this.#pool : this.#lease,
      "claimed_by = $1",
      [this.#instanceId, this.#leaseMs],
      {
        before: `registered AS (
          INSERT INTO "${this.#schema}".instances (id, lease_ms)
          VALUES ($1, $2::integer)
          ON CONFLICT (id) DO UPDATE SET ${renew})`,
      },
    );
  }

  /**
   * Makes the unfinished orders matching `where` unclaimed, with a new
   * epoch, in one statement: a processing one gets an `interrupted` entry
   * and becomes pending again (it resumes after its last finished step).
   * Every instance's claimer is woken at commit (the NOTIFY is part of the
   * statement). `before` is a further data-modifying CTE run in the same
   * statement. Returns how many orders were freed.
   */
  async #free(
    db: pg.Pool,
    where: string,
    params: unknown[],
    options: { before?: string } = {},
  ): Promise<number> {
    const at = params.length + 1;
    const channel = params.length + 2;
    const before = options.before ? `${options.before},` : "";
    const result = await retryDeadlock(() =>
      db.query<{ id: string; epoch: string }>(
        `WITH ${before} freed AS (
           UPDATE ${this.#table} SET
             claimed_by = NULL,
             claim_epoch = claim_epoch + 1,
             status = 'pending',
             updated_at = CASE WHEN status = 'processing'
               THEN greatest($${at}::bigint, created_at) ELSE updated_at END,
             timeline = CASE WHEN status = 'processing'
               THEN timeline || jsonb_build_array(
                 jsonb_build_object('at', greatest($${at}::bigint, created_at),
                   'type', 'interrupted', 'attempt', attempts),
                 jsonb_build_object('at', greatest($${at}::bigint, created_at),
                   'type', 'status', 'status', 'pending'))
               ELSE timeline END
           WHERE status IN ('pending', 'processing') AND (${where})
           RETURNING id, (claim_epoch - 1)::text AS epoch
         ), notified AS (
           SELECT pg_notify($${channel}::text, '')
           FROM (SELECT 1 FROM freed LIMIT 1) AS any_freed
         )
         SELECT freed.id, freed.epoch FROM freed, notified`,
        [...params, this.#now(), workChannel(this.#schema)],
      )
    );
    for (const row of result.rows) this.#forget(row.id, row.epoch);
    return result.rows.length;
  }

  /** Forgets the claim on `id` if it is still the one taken at `epoch`. */
  #forget(id: string, epoch: string | null): void {
    if (epoch !== null && this.#claims.get(id) === epoch) {
      this.#claims.delete(id);
    }
  }

  #wake(): void {
    for (const wake of this.#wakers) wake();
  }
}
