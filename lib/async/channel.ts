/**
 * A bounded, closable FIFO channel for handing values from producers to
 * consumers, modelled on the API of `@std/async`'s `Channel` (which we cannot
 * install: JSR is unreachable from our machines).
 *
 * @module
 */

/** Thrown by a send to, or a receive from, a closed channel. */
export class ChannelClosedError<T = unknown> extends Error {
  /** The value that could not be sent, when the error came from a send. */
  readonly value: T | undefined;

  /** Creates the error; `value` is the value a sender failed to deliver. */
  constructor(value?: T) {
    super("Cannot use channel: channel is closed");
    this.name = "ChannelClosedError";
    this.value = value;
  }
}

/** Options for {@linkcode Channel}. */
export interface ChannelOptions {
  /** How many values the buffer holds before `send()` waits (default 0: hand-off only). */
  capacity?: number;
}

/** Options for a single `send()` or `receive()`. */
export interface ChannelOperationOptions {
  /** Gives up waiting when aborted, rejecting with the signal's reason. */
  signal?: AbortSignal;
}

interface Waiter<T> {
  resolve(value: T): void;
  reject(reason: unknown): void;
  /** Gives up waiting when it aborts. */
  signal: AbortSignal | undefined;
}

interface PendingSend<T> extends Waiter<void> {
  value: T;
}

/**
 * A bounded FIFO channel. Values are delivered in the order they were sent;
 * a sender waits while the buffer is full and a receiver waits while it is
 * empty. Waiting senders and receivers are served first come, first served.
 *
 * @example
 * ```ts
 * import { Channel } from "./channel.ts";
 * const channel = new Channel<number>({ capacity: 2 });
 * await channel.send(1);
 * channel.trySend(2);
 * channel.close();
 * for await (const value of channel) console.log(value); // 1, 2
 * ```
 */
export class Channel<T> implements AsyncIterable<T> {
  readonly #capacity: number;
  // Ring buffer would save the occasional O(n) shift; an array with a head
  // index gives the same amortised O(1) and stays readable.
  #buffer: T[] = [];
  #head = 0;
  #senders: PendingSend<T>[] = [];
  #receivers: Waiter<T>[] = [];
  #closed = false;
  // Signals this channel listens to: one abort listener per signal for the
  // channel's life, not one added and removed per wait (a worker passes
  // the same signal to every receive; the add/remove pair per order was
  // ~2 µs of each POST under load, CPU profile).
  readonly #watched = new WeakSet<AbortSignal>();

  /** Creates a channel whose buffer holds `capacity` values. */
  constructor(options: ChannelOptions = {}) {
    const capacity = options.capacity ?? 0;
    if (!Number.isInteger(capacity) || capacity < 0) {
      throw new RangeError(
        `Cannot create channel: capacity must be a non-negative integer, received "${capacity}"`,
      );
    }
    this.#capacity = capacity;
  }

  /** The number of values the buffer can hold. */
  get capacity(): number {
    return this.#capacity;
  }

  /** The number of values buffered and not yet received. */
  get size(): number {
    return this.#buffer.length - this.#head;
  }

  /** Whether `close()` has been called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** The number of receivers waiting for a value. */
  get waitingReceivers(): number {
    return this.#receivers.length;
  }

  /**
   * Sends a value without waiting. Returns `false` when the value cannot be
   * delivered now (the buffer is full and no receiver waits).
   *
   * @throws {ChannelClosedError} when the channel is closed.
   */
  trySend(value: T): boolean {
    if (this.#closed) throw new ChannelClosedError(value);
    const receiver = this.#receivers.shift();
    if (receiver) {
      receiver.resolve(value);
      return true;
    }
    if (this.size < this.#capacity) {
      this.#buffer.push(value);
      return true;
    }
    return false;
  }

  /**
   * Sends a value, waiting while the buffer is full.
   *
   * Rejects with {@linkcode ChannelClosedError} when the channel is or
   * becomes closed before the value is taken, and with the signal's reason
   * when the signal aborts first; in both cases the value was not delivered.
   */
  send(value: T, options: ChannelOperationOptions = {}): Promise<void> {
    try {
      if (this.trySend(value)) return Promise.resolve();
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#waitInLine<void, PendingSend<T>>(
      this.#senders,
      options.signal,
      { value },
    );
  }

  /**
   * Receives a value without waiting: `{ ok: true, value }` when one was
   * available, otherwise `{ ok: false }`.
   *
   * @throws {ChannelClosedError} when the channel is closed and drained.
   */
  tryReceive(): { ok: true; value: T } | { ok: false } {
    if (this.size > 0) {
      const value = this.#buffer[this.#head] as T;
      // Drop the reference so a received value can be collected.
      (this.#buffer as (T | undefined)[])[this.#head] = undefined;
      this.#head++;
      if (this.#head > 1024 && this.#head * 2 > this.#buffer.length) {
        this.#buffer = this.#buffer.slice(this.#head);
        this.#head = 0;
      }
      this.#refillFromSenders();
      return { ok: true, value };
    }
    const sender = this.#senders.shift();
    if (sender) {
      // Unbuffered hand-off: take the value straight from a waiting sender.
      sender.resolve();
      return { ok: true, value: sender.value };
    }
    if (this.#closed) throw new ChannelClosedError();
    return { ok: false };
  }

  /**
   * Receives the next value, waiting while the channel is empty.
   *
   * Rejects with {@linkcode ChannelClosedError} once the channel is closed
   * and every buffered value has been received, and with the signal's
   * reason when the signal aborts first.
   */
  receive(options: ChannelOperationOptions = {}): Promise<T> {
    try {
      const result = this.tryReceive();
      if (result.ok) return Promise.resolve(result.value);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#waitInLine<T, Waiter<T>>(this.#receivers, options.signal, {});
  }

  /**
   * Closes the channel. Buffered values can still be received; waiting
   * receivers are woken with {@linkcode ChannelClosedError}, and so are
   * waiting senders (the error carries the value each failed to send).
   * Closing twice is harmless.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const receiver of this.#receivers.splice(0)) {
      receiver.reject(new ChannelClosedError());
    }
    for (const sender of this.#senders.splice(0)) {
      sender.reject(new ChannelClosedError(sender.value));
    }
  }

  /** Yields received values until the channel is closed and drained. */
  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    while (true) {
      try {
        yield await this.receive();
      } catch (error) {
        if (error instanceof ChannelClosedError) return;
        throw error;
      }
    }
  }

  #refillFromSenders(): void {
    while (this.size < this.#capacity) {
      const sender = this.#senders.shift();
      if (!sender) return;
      this.#buffer.push(sender.value);
      sender.resolve();
    }
  }

  /**
   * Queues a waiter (a sender or a receiver) at the back of `line` and
   * returns its promise. An abort takes it out of the line and rejects
   * with the signal's reason.
   */
  #waitInLine<V, W extends Waiter<V>>(
    line: W[],
    signal: AbortSignal | undefined,
    fields: Omit<W, keyof Waiter<V>>,
  ): Promise<V> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    const { promise, resolve, reject } = Promise.withResolvers<V>();
    if (signal && !this.#watched.has(signal)) {
      this.#watched.add(signal);
      signal.addEventListener("abort", () => this.#abortWaiters(signal), {
        once: true,
      });
    }
    line.push({ ...fields, resolve, reject, signal } as W);
    return promise;
  }

  /** Rejects, and takes out of line, every waiter that `signal` aborted. */
  #abortWaiters(signal: AbortSignal): void {
    for (
      const line of [this.#receivers, this.#senders] as Waiter<unknown>[][]
    ) {
      const aborted = line.filter((waiter) => waiter.signal === signal);
      if (aborted.length === 0) continue;
      // Refilled in place: a spread of a long line of senders could pass
      // more arguments than a call takes.
      const kept = line.filter((waiter) => waiter.signal !== signal);
      line.length = 0;
      for (const waiter of kept) line.push(waiter);
      for (const waiter of aborted) waiter.reject(signal.reason);
    }
  }
}
