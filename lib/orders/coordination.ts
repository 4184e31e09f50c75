/**
 * The coordination of instances: the port through which instances that
 * share a store divide its orders (claims with their fencing, the lease,
 * rescue, the unclaimed signal) and see each other's changes. A store
 * opened by one process alone coordinates with nobody but its own earlier
 * runs.
 *
 * @module
 */

import type { Order, OrderStatus } from "./order.ts";

/** What an instance tells the others with each heartbeat (the dashboard shows it). */
export interface InstanceStatus {
  queue_depth: number;
  queue_capacity: number;
  workers_busy: number;
  workers_total: number;
  accepting: boolean;
  /** Orders this instance finished since it started, by status. */
  finished?: { completed: number; failed: number; cancelled: number };
  /** Whether processing is paused here. */
  paused?: boolean;
  /** New orders this instance refused for a full queue since it started. */
  refused?: number;
}

/** A live instance as the shared store knows it. */
export interface InstanceInfo {
  id: string;
  /** Epoch milliseconds. */
  started_at: number;
  /** Epoch milliseconds of its last heartbeat. */
  heartbeat_at: number;
  /** As of that heartbeat. */
  status: InstanceStatus | null;
}

/** A change to one order as a store shared by several instances reports it. */
export interface StoredChange {
  /** The database's sequence number: the same on every instance. */
  id: number;
  /** `created`, or the type of the timeline entry the change added. */
  name: string;
  /** The order after the change. */
  order: Order;
  /** The instance that made the change. */
  instance: string;
}

/** Where a change feed starts: what is already counted when its first live change comes. */
export interface FeedStart {
  /** Orders by status, as of the same snapshot the live changes follow. */
  counts: Record<OrderStatus, number>;
  /**
   * Ids of changes still to be published live whose effect `counts`
   * already holds (committed before the snapshot, delivered after it):
   * a consumer that counts from changes skips these once.
   */
  counted: ReadonlySet<number>;
}

/**
 * Every instance's changes, in one order that every instance sees alike.
 * Only stores shared by several instances have one; for the others the
 * in-process wrapper (`store/observed.ts`) publishes each change.
 */
export interface ChangeFeed {
  /**
   * Calls `publish` for the last `history` changes already stored, then for
   * every change made from now on, by any instance, each exactly once and
   * in the feed's order. Stops when the store closes. Resolves with the
   * counts the live changes start from.
   */
  start(
    publish: (change: StoredChange) => void,
    history: number,
  ): Promise<FeedStart>;
  /**
   * The changes published after the one numbered `id`, in the feed's
   * order, from the store's own retention (for a `Last-Event-ID` older
   * than what the process keeps in memory); `undefined` when `id` is no
   * longer kept, or more than `limit` changes followed it.
   */
  replayAfter(id: number, limit: number): Promise<StoredChange[] | undefined>;
}

/**
 * How this instance takes part in sharing the orders. An order that an
 * instance holds in its queue or is processing is claimed by it: creating
 * an order claims it for this instance, `claimPending` claims unclaimed
 * ones, `release` hands claims back, a finishing transition ends one.
 * `rescue` returns the claims of instances that stopped. A single-process
 * store keeps its claims in the process, so after a restart every
 * unfinished order is unclaimed.
 */
export interface Coordination {
  /**
   * Whether other instances share the store: then an instance hands its
   * queued orders back at shutdown instead of processing them.
   */
  readonly shared: boolean;
  /**
   * Claims up to `limit` unclaimed `pending` orders for this instance,
   * oldest first, and returns their ids.
   */
  claimPending(limit: number): Promise<string[]>;
  /**
   * Hands back this instance's claims on those of `ids` that are still
   * `pending` (queued, not started), so that another instance, or the next
   * start, takes them. Returns how many were handed back.
   */
  release(ids: readonly string[]): Promise<number>;
  /**
   * Makes those of `ids` that a change outside the workers made `pending`
   * again (an operator's retry) unclaimed work: a claimer takes them as its
   * queue has room, this instance's, or any instance's on a shared store.
   */
  offer(ids: readonly string[]): Promise<void>;
  /**
   * Tells the other instances that this one is alive. Resolves `false`
   * when they had presumed it dead and rescued its orders (its claims are
   * void; it has registered again).
   */
  heartbeat(status?: InstanceStatus): Promise<boolean>;
  /** The instances sharing the store (none for a single-process store). */
  instances(): Promise<InstanceInfo[]>;
  /**
   * Returns the orders claimed by instances that stopped (a previous
   * process, or an instance whose lease lapsed) to the unclaimed: a
   * `processing` one gets an `interrupted` entry and becomes `pending`
   * again (it resumes after its last finished step). Returns how many.
   */
  rescue(): Promise<number>;
  /**
   * Calls `wake` whenever unclaimed work may have appeared (a release or a
   * rescue, here or on another instance).
   */
  onUnclaimed(wake: () => void): void;
  /** Every instance's changes, when the store is shared by several. */
  readonly changeFeed?: ChangeFeed | undefined;
}
