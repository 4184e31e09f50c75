/**
 * Mutual exclusion for critical sections that span an `await`.
 *
 * @module
 */

/**
 * A FIFO mutex: `acquire()` resolves, in call order, once every earlier
 * holder has released.
 *
 * @example
 * ```ts
 * import { Mutex } from "./mutex.ts";
 * const mutex = new Mutex();
 * const release = await mutex.acquire();
 * try {
 *   // read, await, write
 * } finally {
 *   release();
 * }
 * ```
 */
export class Mutex {
  #tail: Promise<void> = Promise.resolve();
  #holders = 0;

  /** Whether someone holds or waits for the mutex. */
  get locked(): boolean {
    return this.#holders > 0;
  }

  /** Waits for the mutex; the returned function releases it (once). */
  acquire(): Promise<() => void> {
    this.#holders++;
    const { promise: released, resolve: release } = Promise.withResolvers<
      void
    >();
    const previous = this.#tail;
    this.#tail = released;
    let done = false;
    return previous.then(() => () => {
      if (done) return;
      done = true;
      this.#holders--;
      release();
    });
  }
}

/**
 * One {@linkcode Mutex} per key, created on demand and dropped when nobody
 * holds or waits for it, so memory stays bounded by the keys in use.
 *
 * @example
 * ```ts
 * import { KeyedMutex } from "./mutex.ts";
 * const locks = new KeyedMutex();
 * const release = await locks.acquire("idempotency-key");
 * release();
 * ```
 */
export class KeyedMutex {
  #mutexes = new Map<string, Mutex>();

  /** The number of keys currently held or awaited. */
  get size(): number {
    return this.#mutexes.size;
  }

  /** Waits for the mutex of `key`; the returned function releases it. */
  async acquire(key: string): Promise<() => void> {
    let mutex = this.#mutexes.get(key);
    if (!mutex) {
      mutex = new Mutex();
      this.#mutexes.set(key, mutex);
    }
    const release = await mutex.acquire();
    const held = mutex;
    return () => {
      release();
      if (!held.locked && this.#mutexes.get(key) === held) {
        this.#mutexes.delete(key);
      }
    };
  }
}
