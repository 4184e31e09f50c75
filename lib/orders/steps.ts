/**
 * The simulated processing steps: restaurant confirmation, payment and
 * courier assignment, with the timings of the Go service this one replaces.
 *
 * @module
 */

import { delay } from "../async/delay.ts";
import type { Order, Step } from "./order.ts";

/** A step failed; the order may be retried. */
export class StepFailedError extends Error {
  /** Creates the error for `step` with a human-readable `reason`. */
  constructor(readonly step: Step, reason: string) {
    super(reason);
    this.name = "StepFailedError";
  }
}

/** Runs one step of one order; rejects when the signal aborts. */
export type StepRunner = (
  step: Step,
  order: Order,
  signal: AbortSignal,
) => Promise<void>;

/** Options for {@linkcode createSimulatedSteps}. */
export interface SimulatedStepsOptions {
  /** Multiplies every duration; 0 runs the steps without delay. */
  latencyScale: number;
  /** The probability, 0 to 1, that a step fails. */
  failureRate: number;
  /** A source of numbers in [0, 1) (injected by tests). */
  random?: () => number;
}

/** How long a step takes in the Go service this one replaces, in milliseconds. */
export function stepDurationMs(step: Step, order: Order): number {
  switch (step) {
    case "restaurant_confirmation":
      return 1000 * (1 + order.items.length % 2);
    case "payment":
      return 500;
    case "courier_assignment":
      return 1000;
  }
}

/**
 * Creates the step runner that simulates the work with timers.
 *
 * @example
 * ```ts
 * import { createSimulatedSteps } from "./steps.ts";
 * const runStep = createSimulatedSteps({ latencyScale: 0, failureRate: 0 });
 * ```
 */
export function createSimulatedSteps(
  options: SimulatedStepsOptions,
): StepRunner {
  const random = options.random ?? Math.random;
  return async (step, order, signal) => {
    signal.throwIfAborted();
    const durationMs = stepDurationMs(step, order) * options.latencyScale;
    if (durationMs > 0) await delay(durationMs, { signal });
    if (options.failureRate > 0 && random() < options.failureRate) {
      throw new StepFailedError(step, `${step} failed (simulated)`);
    }
  };
}
