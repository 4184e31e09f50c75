/**
 * `PARALLEL`: the main isolate's side of running the service on several
 * isolates of one process. Every isolate (a Worker running
 * `isolate_worker.ts`) runs a whole instance on the shared port; the main
 * isolate owns the process: the port check, start-up errors, signals, the
 * one summary and the exit code. Isolates talk only through messages to
 * the main isolate; nothing is shared under a lock.
 *
 * @module
 */

import type { Logger } from "@logtape/logtape";
import type { Config } from "./config.ts";
import type { MetricsJson, Readiness } from "./http/peers.ts";
import type { OrderSummary } from "./orders/stats.ts";

/** What the main isolate tells an isolate. */
export type ToIsolate =
  | {
    type: "start";
    config: Config;
    index: number;
    count: number;
    /** This isolate's ends of its channels, by the other isolate's index. */
    ports: Array<[number, MessagePort]>;
  }
  | { type: "report"; id: number; what: "metrics" | "readiness" }
  | { type: "gathered"; id: number; values: unknown[] }
  | { type: "drain"; timeoutMs: number };

/** What an isolate tells the main isolate. */
export type FromIsolate =
  | { type: "listening"; port: number }
  | { type: "failed"; reason: string }
  | { type: "gather"; id: number; what: "metrics" | "readiness" }
  | { type: "reported"; id: number; value: MetricsJson | Readiness | null }
  | { type: "drained"; summary: OrderSummary };

/** How long a gathering waits for every isolate's answer. */
const GATHER_TIMEOUT_MS = 2000;

/**
 * The number of isolates `PARALLEL` asks for: `auto` is `DENO_JOBS` when
 * set, else one per core, as `deno serve --parallel` does.
 */
export function isolateCount(
  parallel: number | "auto",
  env: (name: string) => string | undefined,
  cores = navigator.hardwareConcurrency,
): number {
  if (parallel !== "auto") return parallel;
  const jobs = Number(env("DENO_JOBS"));
  return Number.isInteger(jobs) && jobs >= 1 ? jobs : Math.max(1, cores);
}

/** Adds up the isolates' summaries into the process's. */
export function sumSummaries(summaries: readonly OrderSummary[]): OrderSummary {
  const total: OrderSummary = {
    accepted: 0,
    completed: 0,
    failed: 0,
    cancelled: 0,
    recovered: 0,
    handed_back: 0,
    lost: 0,
    drained: 0,
    kept_paused: 0,
    refused: 0,
    abandoned: 0,
  };
  for (const summary of summaries) {
    for (const key of Object.keys(total) as Array<keyof OrderSummary>) {
      total[key] += summary[key];
    }
  }
  return total;
}

/** What {@linkcode IsolateGroup} needs. */
export interface IsolateGroupOptions {
  config: Config;
  count: number;
  lifecycle: Logger;
  /** The module every isolate runs (default `isolate_worker.ts`). */
  workerUrl?: URL;
  /**
   * An isolate stopped after start-up (an uncaught error, out of memory):
   * the process no longer answers for that isolate's instance.
   */
  onIsolateDeath: (reason: string) => void;
}

/** The isolates of a process started with `PARALLEL` above 1. */
export class IsolateGroup {
  readonly #options: IsolateGroupOptions;
  readonly #workers: Worker[] = [];
  // Gatherings in progress: id → the asking isolate, the id it asked
  // under, and the answers so far.
  readonly #gatherings = new Map<number, {
    from: Worker;
    askedId: number;
    values: unknown[];
    left: number;
    timer: ReturnType<typeof setTimeout>;
  }>();
  readonly #drained = new Map<Worker, (summary: OrderSummary) => void>();
  #nextId = 1;
  #started = false;

  /** Creates the group; {@linkcode start} spawns it. */
  constructor(options: IsolateGroupOptions) {
    this.#options = options;
  }

  /**
   * Spawns every isolate and resolves with the port once all listen.
   *
   * @throws {Error} with the first isolate's reason when one cannot start.
   */
  start(): Promise<number> {
    const { config, count } = this.#options;
    const url = this.#options.workerUrl ??
      new URL("./isolate_worker.ts", import.meta.url);
    const listening = Promise.withResolvers<number>();
    let listeningCount = 0;
    // One channel for each pair of isolates: hops go straight to the owner.
    const ports = new Map<number, Array<[number, MessagePort]>>();
    for (let index = 1; index <= count; index++) ports.set(index, []);
    for (let one = 1; one <= count; one++) {
      for (let other = one + 1; other <= count; other++) {
        const { port1, port2 } = new MessageChannel();
        ports.get(one)!.push([other, port1]);
        ports.get(other)!.push([one, port2]);
      }
    }
    for (let index = 1; index <= count; index++) {
      const worker = new Worker(url, { type: "module" });
      this.#workers.push(worker);
      worker.onmessage = (event: MessageEvent<FromIsolate>) => {
        const message = event.data;
        switch (message.type) {
          case "listening":
            if (++listeningCount === count) {
              this.#started = true;
              listening.resolve(message.port);
            }
            break;
          case "failed":
            listening.reject(new Error(message.reason));
            break;
          case "gather":
            this.#gather(worker, message.id, message.what);
            break;
          case "reported":
            this.#reported(message.id, message.value);
            break;
          case "drained":
            this.#drained.get(worker)?.(message.summary);
            break;
        }
      };
      worker.onerror = (event) => {
        event.preventDefault();
        const reason = `isolate ${index} stopped: ${event.message}`;
        if (this.#started) this.#options.onIsolateDeath(reason);
        else listening.reject(new Error(reason));
      };
      const own = ports.get(index)!;
      worker.postMessage(
        { type: "start", config, index, count, ports: own } satisfies ToIsolate,
        { transfer: own.map(([, port]) => port) },
      );
    }
    return listening.promise;
  }

  /**
   * Drains every isolate at once and returns the process's summary, the
   * sum of theirs.
   */
  async drain(timeoutMs: number): Promise<OrderSummary> {
    const summaries = await Promise.all(this.#workers.map((worker) => {
      const { promise, resolve } = Promise.withResolvers<OrderSummary>();
      this.#drained.set(worker, resolve);
      worker.postMessage({ type: "drain", timeoutMs } satisfies ToIsolate);
      return promise;
    }));
    for (const worker of this.#workers) worker.terminate();
    return sumSummaries(summaries);
  }

  /** Stops every isolate at once, without draining. */
  terminate(): void {
    for (const worker of this.#workers) worker.terminate();
  }

  #gather(from: Worker, askedId: number, what: "metrics" | "readiness") {
    const id = this.#nextId++;
    const timer = setTimeout(() => this.#finish(id), GATHER_TIMEOUT_MS);
    this.#gatherings.set(id, {
      from,
      askedId,
      values: [],
      left: this.#workers.length,
      timer,
    });
    for (const worker of this.#workers) {
      worker.postMessage({ type: "report", id, what } satisfies ToIsolate);
    }
  }

  #reported(id: number, value: unknown) {
    const gathering = this.#gatherings.get(id);
    if (!gathering) return; // timed out
    gathering.values.push(value);
    if (--gathering.left === 0) this.#finish(id);
  }

  #finish(id: number) {
    const gathering = this.#gatherings.get(id);
    if (!gathering) return;
    clearTimeout(gathering.timer);
    this.#gatherings.delete(id);
    // An isolate that did not answer in time counts as not ready.
    const missing = gathering.left;
    const values = [...gathering.values];
    for (let index = 0; index < missing; index++) values.push(undefined);
    gathering.from.postMessage(
      { type: "gathered", id: gathering.askedId, values } satisfies ToIsolate,
    );
  }
}
