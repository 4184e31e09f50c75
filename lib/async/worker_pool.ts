/**
 * A fixed pool of async worker loops that take jobs from a source and run
 * them, in the manner of graphile-worker: the pool is given its operations
 * and never reaches into storage itself.
 *
 * @module
 */

import { ChannelClosedError } from "./channel.ts";

/** The pool's life cycle. */
export type WorkerPoolState =
  /** Created; `start()` not yet called. */
  | "idle"
  /** Loops are taking and running jobs. */
  | "running"
  /** The source ended or the pool was aborted; loops are finishing. */
  | "stopping"
  /** Every loop has exited. */
  | "stopped";

/** Options for {@linkcode WorkerPool}. */
export interface WorkerPoolOptions<T> {
  /**
   * Takes the next job, waiting for one. Rejects with
   * {@linkcode ChannelClosedError} when no more jobs will come.
   */
  receive: (options: { signal: AbortSignal }) => Promise<T>;
  /** Runs one job; `signal` aborts when the pool is aborted. */
  process: (job: T, signal: AbortSignal) => Promise<void>;
  /** The number of loops (jobs run at once). */
  concurrency: number;
  /** Told of a job that threw; the loop goes on with the next job. */
  onError?: (error: unknown, job: T) => void;
  /** Told when `receive` fails for a reason other than closing. */
  onReceiveError?: (error: unknown) => void;
}

/**
 * Runs `concurrency` loops, each taking one job at a time. A job that throws
 * never ends its loop. Loops end when the source is closed and drained
 * (graceful) or when {@linkcode WorkerPool.abort} is called (forceful).
 *
 * @example
 * ```ts
 * import { Channel } from "./channel.ts";
 * import { WorkerPool } from "./worker_pool.ts";
 * const jobs = new Channel<number>({ capacity: 10 });
 * const pool = new WorkerPool({
 *   receive: (options) => jobs.receive(options),
 *   process: async (job) => console.log(job),
 *   concurrency: 2,
 * });
 * pool.start();
 * jobs.trySend(1);
 * jobs.close();
 * await pool.done;
 * ```
 */
export class WorkerPool<T> {
  readonly #options: WorkerPoolOptions<T>;
  readonly #controller = new AbortController();
  readonly #done = Promise.withResolvers<void>();
  #state: WorkerPoolState = "idle";
  #busy = 0;
  #live = 0;

  /** Creates a pool; nothing runs until `start()`. */
  constructor(options: WorkerPoolOptions<T>) {
    if (!Number.isInteger(options.concurrency) || options.concurrency < 1) {
      throw new RangeError(
        `Cannot create worker pool: concurrency must be a positive integer, received "${options.concurrency}"`,
      );
    }
    this.#options = options;
  }

  /** The pool's state. */
  get state(): WorkerPoolState {
    return this.#state;
  }

  /** The number of loops. */
  get concurrency(): number {
    return this.#options.concurrency;
  }

  /** The number of loops running a job now. */
  get busy(): number {
    return this.#busy;
  }

  /** Resolves when every loop has exited. */
  get done(): Promise<void> {
    return this.#done.promise;
  }

  /** Starts the loops. */
  start(): void {
    if (this.#state !== "idle") {
      throw new TypeError(`Cannot start worker pool: it is "${this.#state}"`);
    }
    this.#state = "running";
    this.#live = this.#options.concurrency;
    for (let index = 0; index < this.#options.concurrency; index++) {
      this.#loop().finally(() => {
        if (--this.#live === 0) {
          this.#state = "stopped";
          this.#done.resolve();
        }
      });
    }
  }

  /**
   * Aborts the running jobs and stops the loops without taking more jobs.
   * Resolves when every loop has exited.
   */
  abort(reason: unknown = new Error("Worker pool aborted")): Promise<void> {
    if (this.#state === "idle") {
      this.#state = "stopped";
      this.#done.resolve();
    } else if (this.#state === "running") this.#state = "stopping";
    this.#controller.abort(reason);
    return this.done;
  }

  async #loop(): Promise<void> {
    const { signal } = this.#controller;
    while (!signal.aborted) {
      let job: T;
      try {
        job = await this.#options.receive({ signal });
      } catch (error) {
        // A closed source or an abort is the normal end. Any other failure
        // of the source also ends the loop (retrying could spin forever)
        // but is reported first.
        if (!(error instanceof ChannelClosedError) && !signal.aborted) {
          this.#options.onReceiveError?.(error);
        }
        break;
      }
      this.#busy++;
      try {
        await this.#options.process(job, signal);
      } catch (error) {
        this.#options.onError?.(error, job);
      } finally {
        this.#busy--;
      }
    }
    if (this.#state === "running") this.#state = "stopping";
  }
}
