/**
 * Removes delivered messages once they are older than the retention, so
 * the outbox does not grow with every change for ever. Failed and pending
 * messages are kept: a failed one stays listed until it is retried by
 * hand. Each pass removes a bounded batch at a time, so a large backlog of
 * old rows never holds the store's writes up for long.
 *
 * @module
 */

import type { Logger } from "@logtape/logtape";
import type { WebhookStore } from "./webhook_store.ts";

/** Rows removed per statement. */
const BATCH = 1000;

/** Options for {@linkcode WebhookRetention}. */
export interface WebhookRetentionOptions {
  store: Pick<WebhookStore, "prune">;
  /** How long a delivered message is kept after its last attempt. */
  retentionMs: number;
  logger: Logger;
  now?: () => number;
}

/** Prunes delivered messages every while, until stopped. */
export class WebhookRetention {
  readonly #options: WebhookRetentionOptions;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #pass: Promise<void> | undefined;
  #stopped = false;

  /** Creates it; {@linkcode start} runs it. */
  constructor(options: WebhookRetentionOptions) {
    this.#options = options;
  }

  /** How often a pass runs: a tenth of the retention, at most a minute. */
  get intervalMs(): number {
    return Math.min(60_000, Math.max(100, this.#options.retentionMs / 10));
  }

  /** Runs a pass now and then every {@linkcode intervalMs}. */
  start(): void {
    if (this.#timer !== undefined || this.#stopped) return;
    const tick = () => {
      this.#pass = this.prune().then(() => {
        if (!this.#stopped) this.#timer = setTimeout(tick, this.intervalMs);
      });
    };
    tick();
  }

  /** Stops, after the pass under way. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#pass;
  }

  /** One pass: removes every delivered message past the retention. */
  async prune(): Promise<number> {
    const { store, retentionMs, logger } = this.#options;
    const before = (this.#options.now ?? Date.now)() - retentionMs;
    let removed = 0;
    try {
      for (;;) {
        const batch = await store.prune(before, BATCH);
        removed += batch;
        if (batch < BATCH || this.#stopped) break;
      }
    } catch (error) {
      // The next pass tries again; the store may be briefly unreachable.
      logger.warning("Cannot prune delivered webhook messages: {error}", {
        error,
      });
    }
    return removed;
  }
}
