/**
 * How instances sharing one PostgreSQL database divide its orders: claims
 * with their fencing epochs, the lease heartbeat, and the rescue of the
 * orders of instances that stopped.
 *
 * @module
 */

// @ts-types="npm:@types/pg@8.23.1"
import type pg from "pg";
import { StoreUnavailableError } from "../orders/errors.ts";
import type {
  ChangeFeed,
  Coordination,
  InstanceInfo,
  InstanceStatus,
} from "../orders/order_store.ts";
import { orUnavailable, retryDeadlock } from "./postgres_connection.ts";
import { workChannel } from "./postgres_schema.ts";
import {
  claimPendingStatement,
  deleteLapsedStatement,
  deregisterCte,
  freeStatement,
  heartbeatStatement,
  liveInstancesStatement,
  NOTIFY_STATEMENT,
  registerCte,
  releaseStatement,
  rescuedWhere,
  trimEventsStatement,
  unregisteredHoldersStatement,
} from "./postgres_sql.ts";

/** Events kept in the table; older ones are deleted by the rescuing instances. */
export const EVENT_RETENTION = 100_000;

/** What {@linkcode PostgresCoordination} is given. */
export interface PostgresCoordinationOptions {
  /** The schema holding the tables. */
  schema: string;
  /** This instance's id, as the others see it. */
  instanceId: string;
  /** How long this instance may miss heartbeats before it is rescued. */
  leaseMs: number;
  /** The clock, in epoch milliseconds (the time of an `interrupted` entry). */
  now: () => number;
  /** Every instance's changes, read from the database. */
  changeFeed: ChangeFeed;
  /** Called after a rescue that changed orders (the feed reads them). */
  onRescued: () => void;
}

/**
 * How this instance shares a PostgreSQL store with the others. `claimed_by` names the instance that holds an
 * order (queued or processing) and `claim_epoch`, the fencing token, grows
 * at every claim and every rescue. This instance remembers the epoch of
 * each claim it took; a change marked `claimed` applies only while the row
 * still shows this instance and that epoch.
 */
export class PostgresCoordination implements Coordination {
  /** Other instances may share the database. */
  readonly shared = true;
  readonly changeFeed: ChangeFeed;
  readonly #pool: pg.Pool;
  // The heartbeat's own connection: no query of the pool's, nor the event
  // feed's reads on the listener's, can make it late, and a late heartbeat
  // gets a live instance presumed dead and its running orders run twice.
  readonly #lease: pg.Pool;
  readonly #options: PostgresCoordinationOptions;
  readonly #table: string;
  // Order id → the epoch of this instance's claim. An entry is removed only
  // together with the epoch it was taken at (#forget): a stale worker's
  // refusal must not erase a newer claim of the same order.
  readonly #held = new Map<string, string>();
  readonly #wakers: Array<() => void> = [];
  // Whether a write may have committed without our hearing (see rescue).
  #uncertain = false;

  /** Claims kept through `pool`, with heartbeats on `lease`. */
  constructor(
    pool: pg.Pool,
    lease: pg.Pool,
    options: PostgresCoordinationOptions,
  ) {
    this.changeFeed = options.changeFeed;
    this.#pool = pool;
    this.#lease = lease;
    this.#options = options;
    this.#table = `"${options.schema}".orders`;
  }

  /** The epoch of this instance's claim on `id`, or `null` if it holds none. */
  epochOf(id: string): string | null {
    return this.#held.get(id) ?? null;
  }

  /** Records a claim taken at `epoch` (a new order is claimed at epoch 1). */
  hold(id: string, epoch: string): void {
    this.#held.set(id, epoch);
  }

  /** Forgets the claim on `id` if it is still the one taken at `epoch`. */
  forget(id: string, epoch: string | null): void {
    if (epoch !== null && this.#held.get(id) === epoch) this.#held.delete(id);
  }

  /**
   * Forgets the claim on a finished order, whatever its epoch: none can
   * follow, since orders are claimed only while pending.
   */
  forgetFinished(id: string): void {
    this.#held.delete(id);
  }

  /**
   * A write whose answer was lost may have committed: orders claimed here
   * that no one was told of. The next rescue hands them back.
   */
  markUncertain(): void {
    this.#uncertain = true;
  }

  /** Claims up to `limit` unclaimed pending orders, oldest first. */
  claimPending(limit: number): Promise<string[]> {
    return orUnavailable(async () => {
      const result = await this.#pool.query<{ id: string; epoch: string }>(
        claimPendingStatement(this.#table),
        [this.#options.instanceId, limit],
      );
      const ids: string[] = [];
      for (const row of result.rows) {
        this.#held.set(row.id, row.epoch);
        ids.push(row.id);
      }
      return ids.sort();
    }).catch((error) => {
      // As for an insert: the claim may have committed unheard.
      if (error instanceof StoreUnavailableError) this.#uncertain = true;
      throw error;
    });
  }

  /** Hands back this instance's claims on those of `ids` still pending. */
  release(ids: readonly string[]): Promise<number> {
    if (ids.length === 0) return Promise.resolve(0);
    return orUnavailable(async () => {
      const result = await this.#pool.query<{ id: string; epoch: string }>(
        releaseStatement(this.#table),
        [ids, this.#options.instanceId],
      );
      for (const row of result.rows) this.forget(row.id, row.epoch);
      if (result.rows.length > 0) {
        await this.#pool.query(NOTIFY_STATEMENT, [
          workChannel(this.#options.schema),
        ]);
      }
      return result.rows.length;
    });
  }

  /**
   * Tells every instance's claimer, this one's too, that unclaimed work
   * appeared: `ids` are unclaimed pending rows, which a claim finds.
   */
  offer(ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return Promise.resolve();
    return orUnavailable(async () => {
      await this.#pool.query(NOTIFY_STATEMENT, [
        workChannel(this.#options.schema),
      ]);
      this.wake();
    });
  }

  /**
   * Renews the lease. `false` when this instance had been presumed dead:
   * another instance deleted its row and rescued what it saw it hold.
   * What it inserted or claimed since then is still marked as its own, and
   * no rescue would ever touch that while it lives: it is handed back in
   * the same statement that registers it again.
   */
  heartbeat(status?: InstanceStatus): Promise<boolean> {
    return orUnavailable(async () => {
      const renewed = await this.#lease.query(
        heartbeatStatement(this.#options.schema),
        [this.#options.instanceId, status ? JSON.stringify(status) : null],
      );
      if (renewed.rowCount === 1) return true;
      await this.register(false);
      return false;
    });
  }

  /**
   * Registers this instance and, in the same statement, hands back every
   * order still marked as held by it: at start, what a previous run under
   * its id left; after it was presumed dead, what it inserted or claimed
   * meanwhile. Atomic, so no order is marked ours between the two without
   * being freed or known.
   */
  async register(starting: boolean): Promise<void> {
    await this.#free(
      starting ? this.#pool : this.#lease,
      "claimed_by = $1",
      [this.#options.instanceId, this.#options.leaseMs],
      registerCte(this.#options.schema, starting),
    );
  }

  /**
   * Returns to the unclaimed what this instance may hold unknowingly (see
   * {@linkcode markUncertain}) and the orders of instances whose lease
   * lapsed. Returns how many.
   *
   * Every instance rescues, each statement on its own, with no lock held
   * between them and no transaction left open: a rescuer cut off from the
   * database mid-way holds nothing that stops another's rescue (a global
   * lock in a transaction did, until TCP gave up on the cut connection).
   * Two rescuers cannot free one order twice: the freeing UPDATE is
   * conditional, and the second re-checks its row after the first commits.
   */
  async rescue(): Promise<number> {
    let handedBack = 0;
    if (this.#uncertain) {
      // Pending, claimed by this instance, yet not among the claims it
      // knows of: nothing holds them.
      this.#uncertain = false;
      handedBack = await this.#free(
        this.#pool,
        "claimed_by = $1 AND NOT (id = ANY($2))",
        [this.#options.instanceId, [...this.#held.keys()]],
      ).catch((error) => {
        this.#uncertain = true;
        throw error;
      });
    }
    const { schema } = this.#options;
    await retryDeadlock(() => this.#pool.query(deleteLapsedStatement(schema)));
    const stopped = await orUnavailable(() =>
      this.#pool.query<{ id: string }>(
        unregisteredHoldersStatement(this.#table, schema),
      )
    );
    const rescued = await this.#free(this.#pool, rescuedWhere(schema), [
      stopped.rows.map((row) => row.id),
    ]);
    await retryDeadlock(() =>
      this.#pool.query(trimEventsStatement(schema), [EVENT_RETENTION])
    );
    if (handedBack + rescued > 0) this.#options.onRescued();
    return handedBack + rescued;
  }

  /** The live instances, this one among them. */
  instances(): Promise<InstanceInfo[]> {
    return orUnavailable(async () => {
      const result = await this.#pool.query<
        {
          id: string;
          started: string;
          beat: string;
          status: InstanceStatus | null;
        }
      >(liveInstancesStatement(this.#options.schema));
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

  /**
   * Hands back everything this instance holds and deregisters it, in one
   * statement, so that nothing waits for its lease to lapse.
   */
  async deregister(): Promise<void> {
    await this.#free(
      this.#pool,
      "claimed_by = $1",
      [this.#options.instanceId],
      deregisterCte(this.#options.schema),
    );
  }

  /** Calls `wake` when unclaimed work may have appeared. */
  onUnclaimed(wake: () => void): void {
    this.#wakers.push(wake);
  }

  /** Wakes every claimer of this instance. */
  wake(): void {
    for (const wake of this.#wakers) wake();
  }

  /**
   * Runs {@linkcode freeStatement} over `where` on `db` and forgets the
   * claims it ended. Returns how many orders it freed.
   */
  async #free(
    db: pg.Pool,
    where: string,
    params: unknown[],
    before?: string,
  ): Promise<number> {
    const result = await retryDeadlock(() =>
      db.query<{ id: string; epoch: string }>(
        freeStatement(this.#table, where, params.length, before),
        [
          ...params,
          this.#options.now(),
          workChannel(this.#options.schema),
        ],
      )
    );
    for (const row of result.rows) this.forget(row.id, row.epoch);
    return result.rows.length;
  }
}
