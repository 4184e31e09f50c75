/**
 * The dashboard's figures, kept from the order events as they happen, so
 * that reading them never touches the orders table: counts by status,
 * orders created, finished and retried per second, processing times, and
 * the latest failures; and, sampled every second, new orders refused for a
 * full queue and the queue's depth.
 *
 * @module
 */

import {
  isTerminal,
  type Order,
  ORDER_STATUSES,
  type OrderStatus,
  zeroStatusCounts,
} from "../orders/order.ts";
import type { OrderEvent } from "./events.ts";

/** Seconds of per-second history kept (15 minutes). */
export const THROUGHPUT_SECONDS = 900;
/** Processing times kept for the percentiles. */
const DURATIONS_KEPT = 1024;
/** Failed orders kept (a retried one leaves the list). */
const FAILURES_KEPT = 20;

/** A failed order as the dashboard lists it. */
export interface FailureSummary {
  id: string;
  failure_reason: string | null;
  attempts: number;
  /** The reason of every failed attempt, in order. */
  attempt_reasons: string[];
  /** When it failed, epoch milliseconds. */
  at: number;
}

/** The figures at one moment. */
export interface DashboardFigures {
  counts: Record<OrderStatus, number>;
  throughput: {
    /** Epoch seconds of the first bucket; one bucket per second after it. */
    start: number;
    created: number[];
    finished: number[];
    failed: number[];
    /** Failed orders an operator put through again. */
    retried: number[];
    /** New orders refused with 503 for a full queue (sampled). */
    refused: number[];
    /** Orders waiting in the queues, at each second's sample. */
    queue_depth: number[];
  };
  /** Processing time (first start to completion) of recent completed orders. */
  processing_ms: { p50: number | null; p99: number | null; samples: number };
  recent_failures: FailureSummary[];
}

/**
 * Fed every order event (`observe`), in the order the hub publishes them.
 * With a shared store the hub carries every instance's events, so the
 * figures are the whole cluster's.
 */
export class DashboardStats {
  readonly #now: () => number;
  readonly #counts = zeroStatusCounts();
  // Rings of per-second buckets, indexed by epoch second mod the size.
  readonly #created = new Array<number>(THROUGHPUT_SECONDS).fill(0);
  readonly #finished = new Array<number>(THROUGHPUT_SECONDS).fill(0);
  readonly #failed = new Array<number>(THROUGHPUT_SECONDS).fill(0);
  readonly #retried = new Array<number>(THROUGHPUT_SECONDS).fill(0);
  readonly #refused = new Array<number>(THROUGHPUT_SECONDS).fill(0);
  readonly #queue = new Array<number>(THROUGHPUT_SECONDS).fill(0);
  // The refused total at the last sample (a sum of counters since each
  // instance's start), to take the difference from.
  #refusedSeen: number | undefined;
  // The second of the last sample, and the depth it saw.
  #sampledSecond: number | undefined;
  #sampledDepth = 0;
  #lastSecond: number;
  readonly #durations: number[] = [];
  #durationNext = 0;
  readonly #failures: FailureSummary[] = [];
  // Ids of events whose effect the counts read at start already hold.
  readonly #alreadyCounted = new Set<number>();

  /** Empty figures; `now` is the clock in epoch milliseconds (tests inject it). */
  constructor(now: () => number = Date.now) {
    this.#now = now;
    this.#lastSecond = Math.floor(now() / 1000);
  }

  /**
   * Adds the counts of the orders already in the store when this process
   * started (read once, at start).
   */
  addExisting(
    counts: Partial<Record<OrderStatus, number>>,
    counted: ReadonlySet<number> = new Set(),
  ): void {
    for (const status of ORDER_STATUSES) {
      this.#counts[status] += counts[status] ?? 0;
    }
    for (const id of counted) this.#alreadyCounted.add(id);
  }

  /** Takes one event into account. */
  observe(event: OrderEvent): void {
    // Its effect was in the counts read at start (a shared store's feed
    // says which): counted once, there.
    if (this.#alreadyCounted.delete(event.id)) return;
    const order = event.order;
    if (event.name === "created") {
      this.#counts.pending++;
      this.#created[this.#slot()]!++;
      return;
    }
    if (event.name === "retried") {
      this.#retried[this.#slot()]!++;
      // No longer failed: the list is of failures still to deal with.
      const index = this.#failures.findIndex((failure) =>
        failure.id === order.id
      );
      if (index !== -1) this.#failures.splice(index, 1);
      return;
    }
    if (event.name !== "status") return;
    const previous = previousStatus(order);
    if (previous !== undefined) this.#counts[previous]--;
    this.#counts[order.status]++;
    if (!isTerminal(order.status)) return;
    // The clock is read only for the events that fill a bucket (two of an
    // order's six): it was a third of what events cost per order (a V8
    // profile).
    const slot = this.#slot();
    this.#finished[slot]!++;
    if (order.status === "completed") this.#recordDuration(order);
    if (order.status === "failed") {
      this.#failed[slot]!++;
      this.#failures.unshift({
        id: order.id,
        failure_reason: order.failure_reason,
        attempts: order.attempts,
        attempt_reasons: order.timeline.flatMap((entry) =>
          entry.type === "attempt_failed" ? [entry.reason] : []
        ),
        at: order.updated_at,
      });
      if (this.#failures.length > FAILURES_KEPT) this.#failures.pop();
    }
  }

  /**
   * Takes this second's sample: `refusedTotal`, the new orders refused
   * since each instance started, summed; `queueDepth`, the orders queued
   * now, summed.
   */
  sample(sample: { refusedTotal: number; queueDepth: number }): void {
    const slot = this.#slot();
    // An instance that stopped takes its count with it: the sum then
    // drops, and the difference starts again from there.
    const seen = this.#refusedSeen ?? sample.refusedTotal;
    this.#refused[slot]! += Math.max(0, sample.refusedTotal - seen);
    this.#refusedSeen = sample.refusedTotal;
    this.#queue[slot] = sample.queueDepth;
    this.#sampledSecond = this.#lastSecond;
    this.#sampledDepth = sample.queueDepth;
  }

  /** The figures now. */
  figures(): DashboardFigures {
    const second = this.#advance();
    const start = second - THROUGHPUT_SECONDS + 1;
    const series = (ring: number[]) =>
      Array.from(
        { length: THROUGHPUT_SECONDS },
        (_, index) => ring[(start + index) % THROUGHPUT_SECONDS]!,
      );
    // The seconds since the last sample, up to two (the next is due), are
    // read before theirs is taken: the queue is as deep as last seen.
    const queue = series(this.#queue);
    if (this.#sampledSecond !== undefined) {
      const unsampled = second - this.#sampledSecond;
      if (unsampled > 0 && unsampled <= 2) {
        queue.fill(this.#sampledDepth, queue.length - unsampled);
      }
    }
    const sorted = [...this.#durations].sort((a, b) => a - b);
    const percentile = (p: number) =>
      sorted.length === 0
        ? null
        : sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
    return {
      counts: { ...this.#counts },
      throughput: {
        start,
        created: series(this.#created),
        finished: series(this.#finished),
        failed: series(this.#failed),
        retried: series(this.#retried),
        refused: series(this.#refused),
        queue_depth: queue,
      },
      processing_ms: {
        p50: percentile(0.5),
        p99: percentile(0.99),
        samples: sorted.length,
      },
      recent_failures: this.#failures.map((failure) => ({ ...failure })),
    };
  }

  /** The current second's bucket index, after clearing the seconds passed. */
  #slot(): number {
    return this.#advance() % THROUGHPUT_SECONDS;
  }

  /** Clears the buckets of the seconds that passed without events; the current second. */
  #advance(): number {
    const second = Math.floor(this.#now() / 1000);
    const gap = Math.min(second - this.#lastSecond, THROUGHPUT_SECONDS);
    for (let offset = 1; offset <= gap; offset++) {
      const slot = (this.#lastSecond + offset) % THROUGHPUT_SECONDS;
      this.#created[slot] = 0;
      this.#finished[slot] = 0;
      this.#failed[slot] = 0;
      this.#retried[slot] = 0;
      this.#refused[slot] = 0;
      this.#queue[slot] = 0;
    }
    if (second > this.#lastSecond) this.#lastSecond = second;
    return this.#lastSecond;
  }

  #recordDuration(order: Order): void {
    const started = order.timeline.find((entry) =>
      entry.type === "status" && entry.status === "processing"
    );
    if (!started) return;
    const duration = order.updated_at - started.at;
    if (this.#durations.length < DURATIONS_KEPT) this.#durations.push(duration);
    else this.#durations[this.#durationNext] = duration;
    this.#durationNext = (this.#durationNext + 1) % DURATIONS_KEPT;
  }
}

/** The status an order had before its last status entry, if any. */
function previousStatus(order: Order): OrderStatus | undefined {
  let seenLast = false;
  for (let index = order.timeline.length - 1; index >= 0; index--) {
    const entry = order.timeline[index]!;
    if (entry.type !== "status") continue;
    if (seenLast) return entry.status;
    seenLast = true;
  }
  return undefined;
}
