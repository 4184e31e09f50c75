/**
 * The PostgreSQL store's writes, batched: every create and change queued
 * while a statement runs goes into the next one, one round trip and one
 * commit for all.
 *
 * @module
 */

// @ts-types="npm:@types/pg@8.23.1"
import type pg from "pg";
import {
  IdempotencyConflictError,
  StoreUnavailableError,
} from "../orders/errors.ts";
import {
  canTransition,
  isTerminal,
  type NewOrder,
  newPendingOrder,
  type Order,
  sameNewOrder,
  type TimelineEntry,
} from "../orders/order.ts";
import { createOrderIdFactory } from "../orders/order_id.ts";
import type { CreateResult, Transition } from "../orders/order_store.ts";
import { orUnavailable, retryDeadlock } from "./postgres_connection.ts";
import { type OrderRow, toOrder } from "./postgres_rows.ts";
import { WRITE_STATEMENT, writeStatement } from "./postgres_sql.ts";

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

/** Changes applied at most per statement. */
const CHANGE_BATCH = 200;

/**
 * Write statements in flight at once. One: with two, each carried half as
 * many rows for the same throughput (measured), and concurrent commits
 * contend for the WAL.
 */
const STATEMENTS_AT_ONCE = 1;

/** What a {@linkcode PostgresWriteBatcher} is given. */
export interface PostgresWriteBatcherOptions {
  /** The orders table, qualified by its schema. */
  table: string;
  /** This instance: new orders are inserted claimed by it. */
  instanceId: string;
  /** The clock, in epoch milliseconds. */
  now: () => number;
  /** The order an idempotency key created (for a create that lost the race). */
  byIdempotencyKey: (key: string) => Promise<Order | undefined>;
  /** Told of each order inserted (claimed by this instance at epoch 1). */
  onInserted: (order: Order) => void;
  /** Told of each change applied, with the order it left. */
  onAnswered: (order: Order) => void;
  /** Told when a statement changed rows: their events can be read. */
  onWrote: () => void;
  /** Told when an insert may have committed with its answer lost. */
  onUncertain: () => void;
}

/**
 * Writes creates and changes in batches over its own pool (see
 * `WRITE_SESSION_SETTINGS`). A change is conditional: it resolves with the
 * order it left, or `undefined` when it matched nothing.
 */
export class PostgresWriteBatcher {
  readonly #pool: pg.Pool;
  readonly #options: PostgresWriteBatcherOptions;
  readonly #sql: string;
  readonly #newId = createOrderIdFactory();
  // Creates and changes waiting for the next write, and whether one runs.
  #creates: QueuedCreate[] = [];
  #changes: QueuedChange[] = [];
  #writing = 0;

  /** A batcher writing through `pool`. */
  constructor(pool: pg.Pool, options: PostgresWriteBatcherOptions) {
    this.#pool = pool;
    this.#options = options;
    this.#sql = writeStatement(options.table);
  }

  /** Inserts a pending order claimed by this instance (or finds the key's). */
  create(input: NewOrder, key: string | null): Promise<CreateResult> {
    const pending = Promise.withResolvers<CreateResult>();
    this.#creates.push({ input, key, result: pending });
    this.#writeQueued();
    return pending.promise;
  }

  /**
   * Applies `change` to order `id` if it still matches, fenced by `epoch`
   * when the change is `claimed`.
   */
  change(
    id: string,
    change: Transition,
    epoch: string | null,
  ): Promise<Order | undefined> {
    const pending = Promise.withResolvers<Order | undefined>();
    this.#changes.push({ id, change, epoch, result: pending });
    this.#writeQueued();
    return pending.promise;
  }

  /**
   * Writes every queued create and change in one statement (an INSERT and
   * an UPDATE, each over many rows, as two parts of one query); what
   * arrives meanwhile waits for the next. Under load a statement then
   * carries many orders and changes with one round trip and one commit —
   * one WAL sync — for all (the bench's PostgreSQL row); alone, a write
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
        this.#options.onUncertain();
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
    const now = this.#options.now();
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
    // for every worker change (seen with auto_explain). The two parts see
    // the same snapshot, so a change
    // never meets an order inserted in the same statement (none is asked
    // for: a change waits for its order's create to be answered).
    const result = await retryDeadlock(() =>
      this.#pool.query<OrderRow & { i: number | null }>({
        name: WRITE_STATEMENT,
        text: this.#sql,
        values: [
          JSON.stringify(inserts),
          now,
          JSON.stringify(timeline),
          this.#options.instanceId,
          JSON.stringify(updates),
          updates.map((row) => row.id),
        ],
      })
    );
    answered();
    if (result.rows.length > 0) this.#options.onWrote();
    const inserted = new Set<string>();
    const applied = new Map<number, OrderRow>();
    for (const row of result.rows) {
      if (row.i === null) inserted.add(row.id);
      else applied.set(row.i, row);
    }
    for (const [index, { result: answer }] of changes.entries()) {
      const row = applied.get(index);
      const order = row && toOrder(row);
      if (order) this.#options.onAnswered(order);
      answer.resolve(order);
    }
    await Promise.all(creates.map(async ({ input, key, result }, index) => {
      const id = createdIds[index]!;
      if (inserted.has(id)) {
        // Built here, not read back: the row holds exactly what was sent.
        const order = newPendingOrder(id, input, now);
        this.#options.onInserted(order);
        result.resolve({ order, created: true });
        return;
      }
      try {
        const order = (await orUnavailable(() =>
          this.#options.byIdempotencyKey(key!)
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
}
