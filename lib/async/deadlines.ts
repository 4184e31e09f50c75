/**
 * Many deadlines on one timer.
 *
 * @module
 */

/**
 * Tracks deadlines with a single interval instead of a timer each: every
 * request body gets a read deadline, and a timer per request was a
 * measurable share of `POST /orders` (CPU profile, issue #3 note). Deadlines
 * fire up to `resolutionMs` late. The interval runs only while a deadline is
 * pending, so an idle process (and a test) has no timer left over.
 *
 * @example
 * ```ts
 * import { Deadlines } from "./deadlines.ts";
 * const deadlines = new Deadlines(50);
 * const cancel = deadlines.add(1000, () => console.log("too slow"));
 * cancel();
 * ```
 */
export class Deadlines {
  readonly #resolutionMs: number;
  #pending = new Map<number, { at: number; expire: () => void }>();
  #nextKey = 0;
  #timer: ReturnType<typeof setInterval> | undefined;

  /** Creates a tracker that checks every `resolutionMs`. */
  constructor(resolutionMs = 50) {
    this.#resolutionMs = resolutionMs;
  }

  /** The number of pending deadlines. */
  get size(): number {
    return this.#pending.size;
  }

  /** Calls `expire` after `ms` unless the returned function is called first. */
  add(ms: number, expire: () => void): () => void {
    const key = this.#nextKey++;
    this.#pending.set(key, { at: Date.now() + ms, expire });
    this.#timer ??= setInterval(() => this.#check(), this.#resolutionMs);
    return () => {
      this.#pending.delete(key);
      this.#stopIfIdle();
    };
  }

  #check(): void {
    const now = Date.now();
    for (const [key, deadline] of this.#pending) {
      if (deadline.at > now) continue;
      this.#pending.delete(key);
      deadline.expire();
    }
    this.#stopIfIdle();
  }

  #stopIfIdle(): void {
    if (this.#pending.size === 0 && this.#timer !== undefined) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }
}
