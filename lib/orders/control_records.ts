/**
 * The store's third port: what operators set that outlives a request
 * (processing paused; a bulk retry's idempotency key and its answer),
 * kept as named records in the store, so that every instance sharing it
 * sees them and a store that keeps orders keeps these across a restart.
 *
 * @module
 */

/**
 * Named records, each a string the caller encodes. Every method is atomic
 * with respect to every other, across every instance sharing the store.
 */
export interface ControlRecords {
  /** The value of record `name`, or `undefined` when it is not set. */
  read(name: string): Promise<string | undefined>;
  /** Sets record `name` to `value`. */
  write(name: string, value: string): Promise<void>;
  /**
   * Sets record `name` to `value` unless it is set. Resolves `undefined`
   * when this call set it, or with the value it already holds: of two
   * calls racing for one name, exactly one sets it.
   */
  writeIfAbsent(name: string, value: string): Promise<string | undefined>;
}
