/**
 * Every second, what order events cannot tell the dashboard: how many new
 * orders the instances have refused for a full queue, and how deep their
 * queues are, summed over every instance (every isolate, every instance
 * sharing the store) from the status each reports.
 *
 * @module
 */

import { delay } from "../async/delay.ts";
import type { InstanceInfo, InstanceStatus } from "../orders/coordination.ts";
import type { DashboardStats } from "./dashboard_stats.ts";

/** Options for {@linkcode DashboardSampler}. */
export interface DashboardSamplerOptions {
  stats: Pick<DashboardStats, "sample">;
  /** Every instance, with its last status; none for a store one process opens. */
  instances: () => Promise<InstanceInfo[]>;
  /** This instance's status now (used when `instances` lists none). */
  localStatus: () => InstanceStatus;
  /** Between samples (default 1 s). */
  everyMs?: number;
}

/** Samples until stopped. */
export class DashboardSampler {
  readonly #options: DashboardSamplerOptions;
  readonly #stop = new AbortController();
  #loop: Promise<void> | undefined;

  /** Creates the sampler; {@linkcode start} runs it. */
  constructor(options: DashboardSamplerOptions) {
    this.#options = options;
  }

  /** Starts sampling. */
  start(): void {
    this.#loop ??= this.#run();
  }

  /** Stops sampling and waits for the last sample. */
  async stop(): Promise<void> {
    this.#stop.abort();
    await this.#loop;
  }

  async #run(): Promise<void> {
    const { stats, instances, localStatus } = this.#options;
    const signal = this.#stop.signal;
    while (!signal.aborted) {
      try {
        const listed = await instances();
        const statuses = listed.length === 0
          ? [localStatus()]
          : listed.flatMap((instance) => instance.status ?? []);
        stats.sample({
          refusedTotal: statuses.reduce((sum, s) => sum + (s.refused ?? 0), 0),
          queueDepth: statuses.reduce((sum, s) => sum + s.queue_depth, 0),
        });
      } catch {
        // The store cannot list the instances now: this second has no
        // sample, as the chart then shows.
      }
      await delay(this.#options.everyMs ?? 1000, { signal }).catch(() => {});
    }
  }
}
