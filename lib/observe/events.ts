/**
 * Live order events: a hub that numbers every order change, keeps a bounded
 * ring of recent ones for reconnecting clients while anyone listens, and
 * fans them out to subscribers that can never slow the publisher down.
 *
 * @module
 */

import type { Order, TimelineEntry } from "../orders/order.ts";

/** One change to one order. */
export interface OrderEvent {
  /** Increases by one per event over the life of the process. */
  id: number;
  /** What happened: the timeline entry's type (`status`, `step_finished` …), or `created`. */
  name: string;
  /** The order after the change. */
  order: Order;
  /** The instance that made the change, when several share the store. */
  instance?: string | undefined;
}

/** Options for {@linkcode OrderEventHub}. */
export interface OrderEventHubOptions {
  /** Recent events kept for `Last-Event-ID` replay (default 1000). */
  historySize?: number;
  /** Events a subscriber may fall behind before it is dropped (default 256). */
  subscriberBuffer?: number;
  /**
   * How long the history is still kept after the last subscription ended,
   * for clients that reconnect (default 5 minutes).
   */
  historyLingerMs?: number;
  /** The clock, in epoch milliseconds (injected by tests). */
  now?: () => number;
}

/** How long the history outlives the last subscription by default: 5 minutes. */
export const DEFAULT_HISTORY_LINGER_MS = 300_000;

/** What {@linkcode Subscription.next} yields besides events. */
export type SubscriptionEnd =
  /** The hub closed (shutdown). */
  | "closed"
  /** The subscriber fell more than its buffer behind and was dropped. */
  | "overflow";

/** A subscriber's view of the hub. */
export interface Subscription {
  /** The next event, waiting for one; or why the subscription ended. */
  next(): Promise<OrderEvent | SubscriptionEnd>;
  /** Stops receiving; safe to call twice. */
  close(): void;
}

interface Subscriber {
  filter: ((event: OrderEvent) => boolean) | undefined;
  onEnd: ((reason: SubscriptionEnd) => void) | undefined;
  buffer: OrderEvent[];
  waiting: ((value: OrderEvent | SubscriptionEnd) => void) | undefined;
  ended: SubscriptionEnd | undefined;
}

/**
 * The event hub. `publish` is synchronous and never waits for a subscriber:
 * a subscriber whose buffer is full is ended with `"overflow"` instead, so
 * a slow client can never stall the workers or the server.
 *
 * @example
 * ```ts
 * import { OrderEventHub } from "./events.ts";
 * const hub = new OrderEventHub();
 * const subscription = hub.subscribe();
 * // hub.publishChange(order, newEntries) from the store wrapper …
 * subscription.close();
 * ```
 */
export class OrderEventHub {
  readonly #historySize: number;
  readonly #subscriberBuffer: number;
  // A ring: the newest event is at #history[(#historyStart + length - 1) % size].
  // (Array.shift() on a full history moved 1000 slots per event.)
  #history: OrderEvent[] = [];
  #historyStart = 0;
  #nextId = 1;
  // The newest event's id. Ids the hub numbers itself are consecutive;
  // a shared store's are its sequence numbers, unique but delivered in the
  // store's order, so replay then finds the id instead of comparing.
  #lastId = 0;
  // The id of the newest event before the kept history: every event after
  // it is kept. Lets a shared store's client resume from an event that
  // was published while nobody listened (an order that finished before
  // its first stream opened), for which there is nothing to replay.
  #historyFrom = 0;
  #numbered = false;
  #subscribers = new Set<Subscriber>();
  #listeners: Array<(event: OrderEvent) => void> = [];
  #closed = false;
  // The history is kept only while someone could ask for it: while a
  // subscription is open, and until #lingerUntil after the last one ended
  // (0: no one has listened, or no one for the whole linger). Kept for
  // nobody, the ring held the last 1000 events' orders alive across young
  // collections, so they were promoted and collected as old garbage: POST
  // /orders ran 17% slower with events on (deno task bench), 5,900 → 7,000
  // req/s with a 4-event ring (3 alternated rounds).
  #lingerUntil = 0;
  readonly #lingerMs: number;
  readonly #now: () => number;

  /** Creates an empty hub. */
  constructor(options: OrderEventHubOptions = {}) {
    this.#historySize = options.historySize ?? 1000;
    this.#subscriberBuffer = options.subscriberBuffer ?? 256;
    this.#lingerMs = options.historyLingerMs ?? DEFAULT_HISTORY_LINGER_MS;
    this.#now = options.now ?? Date.now;
  }

  /** The id the next event will get (greater than every id so far). */
  get nextId(): number {
    return this.#nextId;
  }

  /** The newest event's id; 0 before the first. */
  get lastId(): number {
    return this.#lastId;
  }

  /** The number of live subscriptions. */
  get subscriberCount(): number {
    return this.#subscribers.size;
  }

  /**
   * Calls `listener` synchronously for every event (metrics). It must be
   * quick and must not throw.
   */
  addListener(listener: (event: OrderEvent) => void): void {
    this.#listeners.push(listener);
  }

  /**
   * Publishes one event per new timeline entry of `order`: the last
   * `entries` of its timeline, or `"created"` for a new order.
   */
  publishChange(order: Order, entries: number | "created"): void {
    if (this.#closed) return;
    if (entries === "created") {
      this.#publish({ id: this.#nextId++, name: "created", order });
      return;
    }
    const timeline: readonly TimelineEntry[] = order.timeline;
    for (
      let index = timeline.length - entries;
      index < timeline.length;
      index++
    ) {
      this.#publish({ id: this.#nextId++, name: timeline[index]!.type, order });
    }
  }

  /**
   * Publishes a change that another isolate of this process made to an
   * order of its shard, numbered here like this isolate's own; `instance`
   * names that isolate, so that each isolate's metrics count their own.
   */
  publishRelayed(
    event: { name: string; order: Order; instance: string },
  ): void {
    if (this.#closed) return;
    this.#publish({
      id: this.#nextId++,
      name: event.name,
      order: event.order,
      instance: event.instance,
    });
  }

  /**
   * Publishes a change as a shared store numbered it (its id is the
   * store's, the same on every instance). A hub fed this way takes no
   * {@linkcode publishChange}.
   */
  publishStored(
    event: { id: number; name: string; order: Order; instance?: string },
  ): void {
    if (this.#closed) return;
    this.#numbered = true;
    if (event.id >= this.#nextId) this.#nextId = event.id + 1;
    this.#publish({
      id: event.id,
      name: event.name,
      order: event.order,
      instance: event.instance,
    });
  }

  /**
   * Subscribes to events matching `filter`. With `afterId`, first replays
   * the kept events after it; `replayed` is `false` when `afterId` is older
   * than the history kept (the caller should say so and start from now),
   * and `replayedCount` says how many kept events matched.
   */
  subscribe(
    options: {
      filter?: (event: OrderEvent) => boolean;
      afterId?: number | undefined;
      /** Told when the subscription ends, e.g. to disconnect a dropped client at once. */
      onEnd?: (reason: SubscriptionEnd) => void;
    } = {},
  ): Subscription & { replayed: boolean; replayedCount: number } {
    const subscriber: Subscriber = {
      filter: options.filter,
      onEnd: options.onEnd,
      buffer: [],
      waiting: undefined,
      ended: this.#closed ? "closed" : undefined,
    };
    // The history starts with what comes next.
    if (this.#history.length === 0) this.#historyFrom = this.#lastId;
    let replayed = true;
    if (options.afterId !== undefined) {
      const afterId = options.afterId;
      let follows: (event: OrderEvent) => boolean;
      if (this.#numbered) {
        // Replay is possible only if the event is still kept; what
        // follows it in the history is what the client missed.
        const fromStart = afterId === this.#historyFrom;
        let seen = fromStart;
        replayed = fromStart;
        follows = (event) => {
          if (seen) return true;
          if (event.id === afterId) replayed = seen = true;
          return false;
        };
        for (const event of this.#kept()) follows(event);
        seen = fromStart;
      } else {
        const oldest = this.#history[this.#historyStart]?.id ?? this.#nextId;
        // Events after afterId are all still kept only if afterId + 1 ≥
        // oldest, and afterId must be one this process could have sent.
        replayed = afterId + 1 >= oldest && afterId < this.#nextId;
        follows = (event) => event.id > afterId;
      }
      if (replayed) {
        for (const event of this.#kept()) {
          if (
            follows(event) &&
            (!subscriber.filter || subscriber.filter(event))
          ) {
            subscriber.buffer.push(event);
          }
        }
      }
    }
    if (!this.#closed) this.#subscribers.add(subscriber);
    return {
      replayed,
      replayedCount: subscriber.buffer.length,
      next: () => {
        const event = subscriber.buffer.shift();
        if (event) return Promise.resolve(event);
        if (subscriber.ended) return Promise.resolve(subscriber.ended);
        return new Promise((resolve) => subscriber.waiting = resolve);
      },
      close: () => this.#end(subscriber, "closed"),
    };
  }

  /** Ends every subscription (shutdown); later publishes are dropped. */
  close(): void {
    this.#closed = true;
    for (const subscriber of [...this.#subscribers]) {
      this.#end(subscriber, "closed");
    }
  }

  #publish(event: OrderEvent): void {
    this.#lastId = event.id;
    for (const listener of this.#listeners) listener(event);
    // Kept only if someone could come back for it.
    if (this.#keepsHistory()) {
      if (this.#history.length < this.#historySize) this.#history.push(event);
      else {
        this.#historyFrom = this.#history[this.#historyStart]!.id;
        this.#history[this.#historyStart] = event;
        this.#historyStart = (this.#historyStart + 1) % this.#historySize;
      }
    }
    // Most events have no live stream to go to: skip the Set's iterator.
    if (this.#subscribers.size === 0) return;
    for (const subscriber of this.#subscribers) {
      if (subscriber.filter && !subscriber.filter(event)) continue;
      if (subscriber.waiting) {
        const wake = subscriber.waiting;
        subscriber.waiting = undefined;
        wake(event);
      } else if (subscriber.buffer.length >= this.#subscriberBuffer) {
        // Never wait for a slow consumer: drop it.
        subscriber.buffer.length = 0;
        this.#end(subscriber, "overflow");
      } else subscriber.buffer.push(event);
    }
  }

  /**
   * Whether events are kept for replay now; drops the history once the
   * last subscription has been gone for the whole linger.
   */
  #keepsHistory(): boolean {
    if (this.#subscribers.size > 0) return true;
    if (this.#lingerUntil === 0) return false;
    if (this.#now() < this.#lingerUntil) return true;
    this.#lingerUntil = 0;
    this.#history = [];
    this.#historyStart = 0;
    return false;
  }

  /** The kept events, oldest first. */
  *#kept(): Iterable<OrderEvent> {
    const count = this.#history.length;
    for (let offset = 0; offset < count; offset++) {
      yield this.#history[(this.#historyStart + offset) % count]!;
    }
  }

  #end(subscriber: Subscriber, reason: SubscriptionEnd): void {
    if (!this.#subscribers.delete(subscriber) && subscriber.ended) return;
    if (this.#subscribers.size === 0) {
      this.#lingerUntil = this.#now() + this.#lingerMs;
    }
    subscriber.ended ??= reason;
    subscriber.onEnd?.(subscriber.ended);
    if (subscriber.waiting) {
      const wake = subscriber.waiting;
      subscriber.waiting = undefined;
      wake(subscriber.ended);
    }
  }
}
