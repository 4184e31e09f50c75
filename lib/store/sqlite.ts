/**
 * The durable embedded store: orders in a SQLite file (Deno's built-in
 * `node:sqlite`), written with group commit.
 *
 * @module
 */

import { DatabaseSync, type StatementSync } from "node:sqlite";
import {
  IdempotencyConflictError,
  OrderNotFoundError,
  StoreOpenError,
  StoreUnavailableError,
} from "../orders/errors.ts";
import {
  type NewOrder,
  newPendingOrder,
  type Order,
  type OrderStatus,
  sameNewOrder,
  zeroStatusCounts,
} from "../orders/order.ts";
import {
  createOrderIdFactory,
  lastIdAt,
  shardOfId,
} from "../orders/order_id.ts";
import type {
  ControlRecords,
  CreateOptions,
  CreateResult,
  ListOptions,
  ListPage,
  OrderStore,
  Transition,
} from "../orders/order_store.ts";
import { applyTransition, refuseTransition } from "../orders/transition.ts";
import { LocalCoordination } from "./local_coordination.ts";
import { SqliteWebhooks } from "./sqlite_webhooks.ts";
import {
  listQuery,
  migrate,
  openError,
  type Row,
  SQL,
  toOrder,
} from "./sqlite_schema.ts";

export { SCHEMA_VERSION } from "./sqlite_schema.ts";

/**
 * The write-ahead log's bound, in pages and bytes. SQLite checkpoints on
 * its own only once the log holds 1,000 pages (4 MiB), and never shrinks
 * the file: on a small volume the log alone filled the disk while the
 * database stayed at one page, and every write failed from then on. Here
 * the log is checkpointed every 128 pages and cut back to 512 KiB after
 * each checkpoint, so it never holds more than about that plus one
 * batch. (docs/storage.md states the bound.)
 */
const WAL_CHECKPOINT_PAGES = 128;
const WAL_SIZE_LIMIT_BYTES = 512 * 1024;

/**
 * Space set aside beside the database (`<file>-reserve`) for the orders
 * already accepted. When a write finds the disk full, the reserve is
 * deleted and new orders are refused (503) until it can be written again:
 * the orders in the queue and the workers then have this much room to
 * finish, instead of a disk filled by new orders that wedges them all.
 * At start it is deleted first, so that opening and recovering a store on
 * a full disk has room too. Isolates sharing the file share its one reserve.
 */
const RESERVE_BYTES = 512 * 1024;

/** How often a missing reserve is written again, at most. */
const RESERVE_RETRY_MS = 1000;

/** How hard SQLite works to survive a power loss (`PRAGMA synchronous`). */
export type SqliteSynchronous = "full" | "normal";

/** Options for {@linkcode SqliteStore}. */
export interface SqliteStoreOptions {
  /** `full` (default): a commit survives power loss; `normal`: only a process crash. */
  synchronous?: SqliteSynchronous;
  /** The clock, in epoch milliseconds (injected by tests). */
  now?: () => number;
  /** Limits the file's size in pages (tests use it to fill the "disk"). */
  maxPageCount?: number;
  /**
   * This process's isolates share the file (`PARALLEL`): this one is
   * `index` (from 0) of `count`. Its order ids name it, and it works only
   * the orders it owns (`shardOfId`), so that each order has one worker.
   */
  shard?: { index: number; count: number } | undefined;
}

interface PendingWrite {
  apply: () => unknown;
  resolve: (value: unknown) => void;
  reject: (reason: unknown) => void;
}

/**
 * Orders in a SQLite database file, in WAL mode.
 *
 * **Durability.** `create()` and `transition()` resolve only after the
 * transaction holding their write has committed, so an acknowledged order
 * survives a crash of the process; with `synchronous: "full"` (the default)
 * it also survives a power loss.
 *
 * **Group commit.** Writes are queued and committed together, one
 * transaction per batch: the batch collects every write made while the
 * previous one was committing, so under load one fsync serves many requests.
 * The whole batch commits or, on any SQLite error (a full disk), none of it
 * does and every caller in it gets {@linkcode StoreUnavailableError}.
 *
 * **Atomicity.** `node:sqlite` is synchronous: a batch runs start to finish
 * in one turn of the event loop, and each write's check-then-update runs
 * inside it, so conditional transitions cannot interleave.
 */
export class SqliteStore implements OrderStore {
  readonly #db: DatabaseSync;
  readonly #now: () => number;
  readonly #newId: () => string;
  readonly #statements: Record<
    Exclude<keyof typeof SQL, "migrate">,
    StatementSync
  >;
  // A list's statement for each combination of filters, prepared once.
  readonly #listStatements = new Map<string, StatementSync>();
  #pending: PendingWrite[] = [];
  #flushTimer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;
  #commits = 0;
  #claims: LocalCoordination;
  // The reserve's file (none for an in-memory database), whether it is
  // in place, and when it was last tried.
  readonly #reservePath: string | undefined;
  #reserved = false;
  #reserveTriedAt = -Infinity;
  readonly #sharedFile: boolean;
  // When a batch first found another isolate holding the write lock.
  #busySince: number | undefined;
  // Whether the batch being written recorded webhook deliveries.
  #recordedDeliveries = false;
  /** Webhook endpoints and the outbox, in the file; written with each change. */
  readonly webhooks: SqliteWebhooks;

  /**
   * Opens (creating if needed) and migrates the database at `path`.
   *
   * @throws {StoreOpenError} for a bad path, no permission, a file that is
   * not a database, or a schema newer than this release understands.
   */
  constructor(readonly path: string, options: SqliteStoreOptions = {}) {
    this.#now = options.now ?? Date.now;
    const { shard } = options;
    this.#newId = createOrderIdFactory(shard ? { shard: shard.index } : {});
    this.#reservePath = path === ":memory:" || path.startsWith("file:")
      ? undefined
      : `${path}-reserve`;
    // Isolates sharing the file (`PARALLEL`) share its reserve, each must
    // see another's release of it, and their batches take turns on its lock.
    this.#sharedFile = (shard?.count ?? 1) > 1;
    if (this.#reservePath !== undefined) {
      try {
        Deno.removeSync(this.#reservePath);
      } catch { /* none yet, or another isolate's start removed it */ }
    }
    let db: DatabaseSync | undefined;
    try {
      db = new DatabaseSync(path);
      // First: isolates sharing the file (`PARALLEL`) open it at once, and
      // the migration waits for the other's lock.
      db.exec(`PRAGMA busy_timeout = ${BUSY_TIMEOUT_MS}`);
      // The switch to WAL can find the other isolate switching too, and
      // then SQLite answers "locked" at once, without its busy wait.
      retryWhileLocked(() => db!.exec("PRAGMA journal_mode = WAL"));
      db.exec(
        `PRAGMA synchronous = ${
          options.synchronous === "normal" ? "NORMAL" : "FULL"
        }`,
      );
      db.exec(`PRAGMA wal_autocheckpoint = ${WAL_CHECKPOINT_PAGES}`);
      db.exec(`PRAGMA journal_size_limit = ${WAL_SIZE_LIMIT_BYTES}`);
      if (options.maxPageCount !== undefined) {
        db.exec(`PRAGMA max_page_count = ${Math.trunc(options.maxPageCount)}`);
      }
      migrate(db, path);
      this.#statements = {
        insert: db.prepare(SQL.insert),
        byId: db.prepare(SQL.byId),
        byKey: db.prepare(SQL.byKey),
        update: db.prepare(SQL.update),
        pendingIds: db.prepare(SQL.pendingIds),
        statusOf: db.prepare(SQL.statusOf),
        controlRead: db.prepare(SQL.controlRead),
        controlWrite: db.prepare(SQL.controlWrite),
        controlInsert: db.prepare(SQL.controlInsert),
      };
    } catch (error) {
      try {
        db?.close();
      } catch { /* already failing */ }
      if (error instanceof StoreOpenError) throw error;
      throw openError(path, (error as Error).message);
    }
    this.#db = db;
    this.webhooks = new SqliteWebhooks(db, {
      read: (query) => this.#read(query),
      write: (apply) => this.#write(apply),
      now: this.#now,
    });
    this.#reserve();
    // Orders made from now on are claimed at creation; the ones already
    // here when the file was opened were left by an earlier process.
    const until = lastIdAt(this.#now());
    this.#claims = new LocalCoordination({
      isPending: (id) =>
        this.#readNow(() =>
          (this.#statements.statusOf.get(id) as { status?: string } | undefined)
            ?.status === "pending"
        ),
      pendingAfter: (after, limit) =>
        this.#readNow(() =>
          (this.#statements.pendingIds.all(after ?? "", until, limit) as Array<
            { id: string }
          >).map((row) => row.id)
        ),
      list: (options) => this.list(options),
      transition: (id, change) => this.transition(id, change),
      ...(shard
        ? { owns: (id: string) => shardOfId(id, shard.count) === shard.index }
        : {}),
    });
  }

  /** Claims held in this process; its rescue looks once, at start. */
  get coordination(): LocalCoordination {
    return this.#claims;
  }

  /**
   * Pause and bulk retry keys, in the file: kept across a restart, and
   * seen by every isolate that opens it. Writes share the group commit.
   */
  readonly control: ControlRecords = {
    read: (name) =>
      this.#read(() =>
        (this.#statements.controlRead.get(name) as
          | { value: string }
          | undefined)?.value
      ),
    write: (name, value) =>
      this.#write(() => {
        this.#statements.controlWrite.run(name, value);
      }),
    writeIfAbsent: (name, value) =>
      this.#write(() => {
        const held = this.#statements.controlRead.get(name) as
          | { value: string }
          | undefined;
        if (held) return held.value;
        this.#statements.controlInsert.run(name, value);
        return undefined;
      }),
  };

  create(input: NewOrder, options: CreateOptions = {}): Promise<CreateResult> {
    const key = options.idempotencyKey;
    if (!this.#reserve()) {
      return Promise.reject(
        new StoreUnavailableError(
          "the disk is full: new orders are refused until there is room for the ones accepted",
        ),
      );
    }
    return this.#write((): CreateResult => {
      if (key !== undefined) {
        const existing = this.#row(this.#statements.byKey, key);
        if (existing) {
          const order = toOrder(existing);
          if (!sameNewOrder(order, input)) {
            throw new IdempotencyConflictError(key, order.id);
          }
          return { order, created: false };
        }
      }
      const now = this.#now();
      const order = newPendingOrder(this.#newId(), input, now);
      this.#statements.insert.run(
        order.id,
        order.customer_id,
        order.restaurant_id,
        JSON.stringify(order.items),
        now,
        now,
        JSON.stringify(order.timeline),
        key ?? null,
      );
      // The outbox, in the same transaction: no change without its messages.
      if (this.webhooks.record(order, true, [])) {
        this.#recordedDeliveries = true;
      }
      return { order, created: true };
    }).then((result) => {
      // After the commit: a claim on a write that failed would hold nothing.
      if (result.created) this.#claims.claim(result.order.id);
      return result;
    });
  }

  get(id: string): Promise<Order | undefined> {
    return this.#read(() => {
      const row = this.#row(this.#statements.byId, id);
      return row && toOrder(row);
    });
  }

  getByIdempotencyKey(key: string): Promise<Order | undefined> {
    return this.#read(() => {
      const row = this.#row(this.#statements.byKey, key);
      return row && toOrder(row);
    });
  }

  list(options: ListOptions): Promise<ListPage> {
    return this.#read(() => {
      // One row more than asked tells whether another page follows.
      const { sql, values } = listQuery(options);
      let statement = this.#listStatements.get(sql);
      if (statement === undefined) {
        statement = this.#db.prepare(sql);
        this.#listStatements.set(sql, statement);
      }
      const rows = statement.all(...values) as unknown as Row[];
      const hasMore = rows.length > options.limit;
      return { orders: rows.slice(0, options.limit).map(toOrder), hasMore };
    });
  }

  transition(id: string, change: Transition): Promise<Order> {
    return this.#write(() => {
      const row = this.#row(this.#statements.byId, id);
      if (!row) throw new OrderNotFoundError(id);
      const current = toOrder(row);
      const refusal = refuseTransition(id, {
        status: current.status,
        cancelRequested: current.cancel_requested,
      }, change);
      if (refusal) throw refusal;
      const lost = this.#claims.refuse(id, change);
      if (lost) throw lost;
      // The one rule every store applies (the memory store too).
      const order = applyTransition(current, change, this.#now());
      this.#statements.update.run(
        order.status,
        order.updated_at,
        order.attempts,
        order.failure_reason,
        order.cancel_requested ? 1 : 0,
        JSON.stringify(order.timeline),
        id,
      );
      const added = order.timeline.slice(current.timeline.length);
      if (this.webhooks.record(order, false, added)) {
        this.#recordedDeliveries = true;
      }
      return order;
    }).then((order) => {
      this.#claims.settle(id, order.status);
      return order;
    });
  }

  countByStatus(): Promise<Record<OrderStatus, number>> {
    return this.#read(() => {
      const counts = zeroStatusCounts();
      const rows = this.#db.prepare(
        "SELECT status, count(*) AS n FROM orders GROUP BY status",
      ).all() as Array<{ status: OrderStatus; n: number }>;
      for (const row of rows) counts[row.status] = row.n;
      return counts;
    });
  }

  /** The number of transactions committed so far (each holds a batch). */
  get commitCount(): number {
    return this.#commits;
  }

  /**
   * Whether another connection holds the write lock now; when it does not,
   * the batch's write transaction is begun. Does not wait. Any other error
   * is left for the batch's own `BEGIN` to meet and report.
   */
  #lockedElsewhere(): boolean {
    this.#db.exec("PRAGMA busy_timeout = 0");
    try {
      this.#db.exec("BEGIN IMMEDIATE");
      return false;
    } catch (error) {
      return /locked|busy/i.test((error as Error).message);
    } finally {
      this.#db.exec(`PRAGMA busy_timeout = ${BUSY_TIMEOUT_MS}`);
    }
  }

  /**
   * Whether the reserve is in place: writes it when missing, at most once
   * a second (each failed try writes until the disk refuses).
   */
  #reserve(): boolean {
    if (this.#reservePath === undefined) return true;
    const now = performance.now();
    if (this.#reserved) {
      if (!this.#sharedFile || exists(this.#reservePath)) return true;
      // Another isolate found the disk full and released it: its space is
      // the accepted orders' for a second, as after a release here.
      this.#reserved = false;
      this.#reserveTriedAt = now;
    }
    if (now - this.#reserveTriedAt < RESERVE_RETRY_MS) return false;
    this.#reserveTriedAt = now;
    try {
      Deno.writeFileSync(this.#reservePath, new Uint8Array(RESERVE_BYTES));
      this.#reserved = true;
    } catch {
      this.#release();
    }
    return this.#reserved;
  }

  /** Deletes the reserve, handing its space to the writes that need it. */
  #release(): void {
    this.#reserved = false;
    if (this.#reservePath === undefined) return;
    try {
      Deno.removeSync(this.#reservePath);
    } catch { /* already gone */ }
  }

  /** Commits what is queued, then closes the database. */
  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    clearTimeout(this.#flushTimer);
    // The last batch waits for the lock: nothing would come back for it.
    this.#flush({ wait: true });
    this.#closed = true;
    this.#db.close();
    this.#release();
    return Promise.resolve();
  }

  #row(statement: StatementSync, value: string): Row | undefined {
    return statement.get(value) as Row | undefined;
  }

  #read<T>(query: () => T): Promise<T> {
    try {
      return Promise.resolve(this.#readNow(query));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** `query()`'s answer; `StoreUnavailableError` when it cannot be read. */
  #readNow<T>(query: () => T): T {
    if (this.#closed) throw new StoreUnavailableError("the store is closed");
    try {
      return query();
    } catch (error) {
      throw new StoreUnavailableError((error as Error).message);
    }
  }

  /** Queues a write for the next group commit; resolves once committed. */
  #write<T>(apply: () => T): Promise<T> {
    if (this.#closed) {
      return Promise.reject(new StoreUnavailableError("the store is closed"));
    }
    const { promise, resolve, reject } = Promise.withResolvers<T>();
    this.#pending.push({
      apply,
      resolve: resolve as (value: unknown) => void,
      reject,
    });
    // A timer, not a microtask: it lets the event loop take in the other
    // requests that arrived meanwhile, so they share this commit.
    this.#flushTimer ??= setTimeout(() => this.#flush(), 0);
    return promise;
  }

  #flush(options: { wait?: boolean } = {}): void {
    this.#flushTimer = undefined;
    const batch = this.#pending;
    this.#pending = [];
    if (batch.length === 0) return;
    if (this.#sharedFile && !options.wait && this.#lockedElsewhere()) {
      // Another isolate holds the file's write lock. Waiting for it in
      // SQLite's busy handler would stop this isolate's event loop for the
      // length of the other's commit (its sync, milliseconds), so the batch
      // goes back to the front of the queue and is tried again shortly,
      // until the busy timeout, as the busy handler would have.
      const now = performance.now();
      this.#busySince ??= now;
      if (now - this.#busySince < BUSY_TIMEOUT_MS) {
        this.#pending = batch.concat(this.#pending);
        this.#flushTimer = setTimeout(() => this.#flush(), BUSY_RETRY_MS);
        return;
      }
      this.#busySince = undefined;
      const locked = new StoreUnavailableError("database is locked");
      for (const write of batch) write.reject(locked);
      return;
    }
    this.#busySince = undefined;
    const outcomes: Array<
      { ok: true; value: unknown } | { ok: false; error: unknown }
    > = [];
    try {
      if (!this.#db.isTransaction) this.#db.exec("BEGIN IMMEDIATE");
      for (const write of batch) {
        try {
          outcomes.push({ ok: true, value: write.apply() });
        } catch (error) {
          // Domain refusals happen before any SQL of that write runs, so
          // the batch can go on; an SQLite error aborts the whole batch.
          if (error instanceof Error && error.name in DOMAIN_ERRORS) {
            outcomes.push({ ok: false, error });
          } else throw error;
        }
      }
      this.#db.exec("COMMIT");
      this.#commits++;
      if (this.#recordedDeliveries) {
        this.#recordedDeliveries = false;
        this.webhooks.recorded();
      }
    } catch (error) {
      this.#recordedDeliveries = false;
      try {
        if (this.#db.isTransaction) this.#db.exec("ROLLBACK");
      } catch { /* the rollback failing changes nothing for the callers */ }
      if (/full/i.test(String((error as Error).message))) {
        // Out of space: give the accepted orders the reserve, then move
        // what the log holds into the database and cut the log to
        // nothing, which gives its space back too.
        this.#release();
        try {
          this.#db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
        } catch { /* the next refused batch tries again */ }
      }
      const unavailable = new StoreUnavailableError((error as Error).message);
      for (const write of batch) write.reject(unavailable);
      return;
    }
    batch.forEach((write, index) => {
      const outcome = outcomes[index]!;
      if (outcome.ok) write.resolve(outcome.value);
      else write.reject(outcome.error);
    });
  }
}

/**
 * Runs `statement`, again while SQLite answers that the database is locked,
 * for up to the busy timeout. Only at open: it blocks the isolate meanwhile.
 */
function retryWhileLocked(statement: () => void): void {
  const deadline = performance.now() + BUSY_TIMEOUT_MS;
  const pause = new Int32Array(new SharedArrayBuffer(4));
  while (true) {
    try {
      return statement();
    } catch (error) {
      const locked = /locked|busy/i.test(String((error as Error).message));
      if (!locked || performance.now() > deadline) throw error;
      Atomics.wait(pause, 0, 0, 10);
    }
  }
}

// How long a statement waits for another connection's lock.
const BUSY_TIMEOUT_MS = 5000;

// How soon a batch that found the write lock held tries again.
const BUSY_RETRY_MS = 1;

/** Whether a file is at `path`. */
function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

const DOMAIN_ERRORS: Record<string, true> = {
  ClaimLostError: true,
  IdempotencyConflictError: true,
  InvalidTransitionError: true,
  OrderNotFoundError: true,
};
