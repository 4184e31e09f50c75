/**
 * Pausing processing: an operator's switch that stops the workers taking
 * orders (steps already running finish) while intake goes on. The state
 * is a control record, so that on a shared store every instance holds to
 * it, including one that starts while paused, and a store that keeps
 * orders keeps it across a restart.
 *
 * @module
 */

import type { Logger } from "@logtape/logtape";
import { ChannelClosedError } from "../async/channel.ts";
import { delay } from "../async/delay.ts";
import type { Gate } from "../async/gate.ts";
import type { ControlRecords } from "./control_records.ts";

/** Whether processing is paused, and since when. */
export interface PauseState {
  paused: boolean;
  /** Epoch milliseconds of the change that set it; `null` if never set. */
  since: number | null;
}

/** The control record that holds the {@linkcode PauseState}. */
export const PAUSE_RECORD = "processing.paused";

/** Options for {@linkcode ProcessingPause}. */
export interface ProcessingPauseOptions {
  control: ControlRecords;
  /** The workers wait at this gate before they take an order. */
  gate: Gate;
  logger: Logger;
  now?: () => number;
}

/**
 * This instance's view of the pause, and the switch that sets it for every
 * instance sharing the store.
 */
export class ProcessingPause {
  readonly #options: ProcessingPauseOptions;
  #state: PauseState = { paused: false, since: null };
  #watching: AbortController | undefined;
  // Set by `drain`: whether the store keeps the orders a pause leaves.
  #drainKeeps: boolean | undefined;
  #loop: Promise<void> | undefined;

  /** Creates the switch, running until told otherwise. */
  constructor(options: ProcessingPauseOptions) {
    this.#options = options;
  }

  /** The state this instance holds to now. */
  get state(): PauseState {
    return this.#state;
  }

  /**
   * Pauses or resumes processing: recorded in the store first, so that an
   * instance that starts, or looks, after this answer sees it; then held
   * to here at once.
   */
  async set(paused: boolean): Promise<PauseState> {
    const state = { paused, since: (this.#options.now ?? Date.now)() };
    // Race: two operators switching at once, through two instances. The
    // store keeps the last write; an instance that applied the other one
    // last corrects itself at its next look (`watch`) on a shared store.
    await this.#options.control.write(PAUSE_RECORD, JSON.stringify(state));
    this.apply(state);
    return state;
  }

  /** Holds to `state` here (set elsewhere: another isolate, the store). */
  apply(state: PauseState): void {
    const changed = state.paused !== this.#state.paused;
    this.#state = state;
    if (!changed) return;
    if (this.#drainKeeps !== undefined) {
      // Paused while draining (a request the server still answers): the
      // workers must not wait for a resume that may never come.
      if (state.paused) this.#endWaits();
    } else if (state.paused) this.#options.gate.shut();
    else this.#options.gate.open();
    this.#options.logger.warning(
      state.paused
        ? "Processing paused: workers take no orders until resumed; intake goes on"
        : "Processing resumed",
      { paused: state.paused },
    );
  }

  /** Reads the state from the store and holds to it. */
  async sync(): Promise<void> {
    const raw = await this.#options.control.read(PAUSE_RECORD);
    if (raw === undefined) return;
    const state = parseState(raw);
    if (state === undefined) {
      this.#options.logger.error(
        "Ignoring the pause record: it is not a pause state",
      );
      return;
    }
    this.apply(state);
  }

  /**
   * Reads the store every `everyMs`, for a store other instances share:
   * their switch reaches this instance within that long.
   */
  watch(everyMs: number): void {
    if (this.#watching) return;
    const watching = new AbortController();
    this.#watching = watching;
    let failing = false;
    this.#loop = (async () => {
      while (!watching.signal.aborted) {
        await delay(everyMs, { signal: watching.signal }).catch(() => {});
        if (watching.signal.aborted) break;
        try {
          await this.sync();
          failing = false;
        } catch (error) {
          // Hold to the last state seen until the store answers again.
          if (!failing) {
            this.#options.logger.warning(
              "Cannot read the pause state: {error}",
              { error },
            );
          }
          failing = true;
        }
      }
    })();
  }

  /** Stops watching the store. */
  async stopWatching(): Promise<void> {
    this.#watching?.abort();
    await this.#loop;
  }

  /**
   * At shutdown while paused: a store that keeps orders keeps the queued
   * ones pending, for the next start or another instance, so the workers
   * waiting at the gate stop instead; a store that keeps nothing would
   * lose them, so the pause is lifted here (not in the store) and they
   * are processed.
   */
  drain(keepsOrders: boolean): "none" | "kept" | "lifted" {
    this.#drainKeeps = keepsOrders;
    if (!this.#state.paused) return "none";
    this.#endWaits();
    return keepsOrders ? "kept" : "lifted";
  }

  #endWaits(): void {
    if (this.#drainKeeps) this.#options.gate.end(new ChannelClosedError());
    else this.#options.gate.open();
  }
}

function parseState(raw: string): PauseState | undefined {
  try {
    const value = JSON.parse(raw) as Partial<PauseState>;
    if (typeof value.paused !== "boolean") return undefined;
    return {
      paused: value.paused,
      since: typeof value.since === "number" ? value.since : null,
    };
  } catch {
    return undefined;
  }
}
