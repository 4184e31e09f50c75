/**
 * An operator's bulk retry, safe to repeat with an `Idempotency-Key`: the
 * key, the filter it was used with and the answer are a control record,
 * so a repeat through any instance sharing the store answers as the first
 * did and retries nothing more.
 *
 * @module
 */

import {
  BulkRetryInProgressError,
  BulkRetryKeyConflictError,
} from "./errors.ts";
import type { ControlRecords } from "./control_records.ts";
import type { FailedFilter } from "./order_service.ts";

/** What a bulk retry answers. */
export interface BulkRetryResult {
  /** Orders put through again by the call that ran (the first, when replayed). */
  retried: number;
  /** Whether this answer repeats an earlier call's, for the same key. */
  replayed: boolean;
}

/** Options for {@linkcode BulkRetry}. */
export interface BulkRetryOptions {
  control: ControlRecords;
  /** Retries the failed orders `filter` matches, everywhere this reaches. */
  retry: (filter: FailedFilter) => Promise<number>;
  now?: () => number;
  /**
   * A call recorded as running for longer than this is taken to have died
   * with its instance, and a repeat runs it again (default 60 s).
   */
  staleMs?: number;
}

/** A key's record: running until `retried` is set. */
interface KeyRecord {
  filter: string;
  started_at: number;
  retried?: number;
}

/** Runs bulk retries, each key at most once. */
export class BulkRetry {
  readonly #options: BulkRetryOptions;

  /** Creates the use case. */
  constructor(options: BulkRetryOptions) {
    this.#options = options;
  }

  /**
   * Retries the failed orders `filter` matches. With `key`: the first call
   * runs and records its answer; a repeat with the same filter gets that
   * answer and changes nothing.
   *
   * @throws {BulkRetryKeyConflictError} (422) for the key with another filter.
   * @throws {BulkRetryInProgressError} (409) while the key's first call runs.
   */
  async run(filter: FailedFilter, key?: string): Promise<BulkRetryResult> {
    const { control, retry } = this.#options;
    if (key === undefined) {
      return { retried: await retry(filter), replayed: false };
    }
    const name = `bulk_retry:${key}`;
    const now = this.#options.now ?? Date.now;
    const running: KeyRecord = {
      filter: fingerprint(filter),
      started_at: now(),
    };
    // Race: two calls with one key, through two instances. writeIfAbsent
    // has one winner; the other reads its record and does not run.
    const held = await control.writeIfAbsent(name, JSON.stringify(running));
    if (held !== undefined) {
      const record = JSON.parse(held) as KeyRecord;
      if (record.filter !== running.filter) {
        throw new BulkRetryKeyConflictError(key);
      }
      if (record.retried !== undefined) {
        return { retried: record.retried, replayed: true };
      }
      if (now() - record.started_at < (this.#options.staleMs ?? 60_000)) {
        throw new BulkRetryInProgressError(key);
      }
      // The first call's instance died while it ran: run it again. Orders
      // it had retried are no longer failed, so none is retried twice.
      await control.write(name, JSON.stringify(running));
    }
    const retried = await retry(filter);
    await control.write(name, JSON.stringify({ ...running, retried }));
    return { retried, replayed: false };
  }
}

/** The filter as a string that two equal filters share. */
function fingerprint(filter: FailedFilter): string {
  return JSON.stringify([
    filter.customerId ?? null,
    filter.restaurantId ?? null,
    filter.failedAfter ?? null,
    filter.failedBefore ?? null,
    filter.reason ?? null,
  ]);
}
