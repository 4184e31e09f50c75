/**
 * Order ids: `ORD-` followed by a ULID.
 *
 * @module
 */

import { encodeTime, monotonicFactory } from "ulid";

/**
 * Creates an id generator. Ids are unique and sort by creation time: within
 * one millisecond the monotonic factory increments the random part instead
 * of drawing a new one, so ids made in a burst still sort in creation order
 * (the Go service this one replaces took ids from the clock, and they collided).
 *
 * @example
 * ```ts
 * import { createOrderIdFactory } from "./order_id.ts";
 * const newId = createOrderIdFactory();
 * newId(); // "ORD-01JD…"
 * ```
 */
export function createOrderIdFactory(
  options: { shard?: number } = {},
): () => string {
  const next = monotonicFactory(pooledRandom());
  const { shard } = options;
  if (shard === undefined) return () => `ORD-${next()}`;
  if (!Number.isInteger(shard) || shard < 0 || shard >= CROCKFORD.length) {
    throw new RangeError(
      `Cannot make order ids: shard must be an integer from 0 to 31, received "${shard}"`,
    );
  }
  // The first character of the random part names the shard. The monotonic
  // factory changes it only on a carry out of the other 75 random bits.
  const mark = CROCKFORD[shard]!;
  return () => {
    const ulid = next();
    return `ORD-${ulid.slice(0, 10)}${mark}${ulid.slice(11)}`;
  };
}

// ULID's alphabet (Crockford's base 32).
const CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/**
 * The shard (from 0) that owns order `id` when `count` shards share the
 * orders: the shard its id names, modulo `count`. Every id has one owner
 * whatever the count: one made by a single isolate (whose mark is any
 * character), or by more isolates than run now, belongs to the shard its
 * mark falls on. `undefined` for a string that is not an order id.
 */
export function shardOfId(id: string, count: number): number | undefined {
  if (!/^ORD-[0-9A-HJKMNP-TV-Z]{26}$/.test(id)) return undefined;
  return CROCKFORD.indexOf(id[14]!) % count;
}

/** The shard (from 0) that owns idempotency key `key`: FNV-1a, modulo `count`. */
export function shardOfKey(key: string, count: number): number {
  let hash = 0x811c9dc5;
  for (let index = 0; index < key.length; index++) {
    hash ^= key.charCodeAt(index);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash % count;
}

/**
 * Cryptographic random fractions drawn from a 4 KiB pool, refilled in one
 * call. The library's default PRNG asks the OS for one byte per character
 * through a fresh one-byte buffer each time: 16 calls and 16 buffers per id.
 */
function pooledRandom(): () => number {
  const pool = new Uint8Array(4096);
  let next = pool.length;
  return () => {
    if (next === pool.length) {
      crypto.getRandomValues(pool);
      next = 0;
    }
    return pool[next++]! / 256;
  };
}

/**
 * The greatest id that can have been made before or at `epochMs`: every id
 * made later sorts after it. Recovery uses it to tell the orders a previous
 * process left from the ones this process is taking now.
 */
export function lastIdAt(epochMs: number): string {
  return `ORD-${encodeTime(epochMs, 10)}${"Z".repeat(16)}`;
}

/**
 * How far an id's time may stray from its order's `created_at`: the
 * monotonic factory keeps the last millisecond it saw when the clock steps
 * back, and the store stamps `created_at` from its own reading.
 */
const ID_TIME_SLACK_MS = 60_000;

/**
 * Bounds on the ids of orders created in [`after`, `before`): every such
 * order's id is at least `from` and below `to` (either absent when its
 * time is). A store scans that range of its id index and checks
 * `created_at` exactly, instead of every order.
 */
export function idRangeOfCreation(
  after: number | undefined,
  before: number | undefined,
): { from?: string; to?: string } {
  const clamp = (ms: number) => Math.min(Math.max(ms, 0), MAX_ULID_TIME);
  return {
    ...(after === undefined
      ? {}
      : { from: `ORD-${encodeTime(clamp(after - ID_TIME_SLACK_MS), 10)}` }),
    ...(before === undefined
      ? {}
      : { to: lastIdAt(clamp(before + ID_TIME_SLACK_MS)) }),
  };
}

// The largest time a ULID holds (48 bits of milliseconds).
const MAX_ULID_TIME = 2 ** 48 - 1;
