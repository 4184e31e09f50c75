/**
 * Many deadlines on one timer.
 *
 * @module
 */

interface Deadline {
  at: number;
  expire: () => void;
}

/**
 * Tracks deadlines with a single interval instead of a timer each: every
 * request body gets a read deadline, and a timer per request was a
 * measurable share of `POST /orders` (CPU profile, issue #3 note). Deadlines
 * fire up to `resolutionMs` late.
 *
 * The interval is stopped by a check that finds no deadline pending, not
 * when the last one is cancelled: under load the set empties between
 * requests, and stopping it then made it one timer per request again
 * (`setInterval` + `clearInterval` cost 1.5 µs a request; `deno bench`).
 * While nothing is pending the timer is unref'd, so an idle process — or a
 * test — is not held open by it.
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
  readonly #pending = new Set<Deadline>();
  #timer: ReturnType<typeof setInterval> | undefined;

  /** Creates a tracker that checks every `resolutionMs`. */
  constructor(resolutionMs = 50) {
    this.#resolutionMs = resolutionMs;
  }

  /** The number of pending deadlines. */
  get size(): number {
    return this.#pending.size;
  }

  /** Whether the checking interval exists (it may be unref'd). */
  get running(): boolean {
    return this.#timer !== undefined;
  }

  /** Calls `expire` after `ms` unless the returned function is called first. */
  add(ms: number, expire: () => void): () => void {
    const deadline: Deadline = { at: Date.now() + ms, expire };
    if (this.#pending.size === 0) {
      if (this.#timer === undefined) {
        this.#timer = setInterval(() => this.#check(), this.#resolutionMs);
      } else Deno.refTimer(this.#timer);
    }
    this.#pending.add(deadline);
    return () => {
      if (this.#pending.delete(deadline) && this.#pending.size === 0) {
        Deno.unrefTimer(this.#timer!);
      }
    };
  }

  #check(): void {
    const now = Date.now();
    for (const deadline of this.#pending) {
      if (deadline.at > now) continue;
      this.#pending.delete(deadline);
      deadline.expire();
    }
    if (this.#pending.size === 0 && this.#timer !== undefined) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }
}
