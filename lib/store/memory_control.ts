/**
 * Control records in the process: lost with it, like the memory store's
 * orders.
 *
 * @module
 */

import type { ControlRecords } from "../orders/control_records.ts";

/** {@linkcode ControlRecords} in a `Map`; each call completes in one turn. */
export class MemoryControlRecords implements ControlRecords {
  readonly #records = new Map<string, string>();

  read(name: string): Promise<string | undefined> {
    return Promise.resolve(this.#records.get(name));
  }

  write(name: string, value: string): Promise<void> {
    this.#records.set(name, value);
    return Promise.resolve();
  }

  writeIfAbsent(name: string, value: string): Promise<string | undefined> {
    const held = this.#records.get(name);
    if (held === undefined) this.#records.set(name, value);
    return Promise.resolve(held);
  }
}
