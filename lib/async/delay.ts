/**
 * An abortable delay on the web `setTimeout`.
 *
 * @module
 */

/**
 * Resolves after `ms` milliseconds, or rejects with the signal's reason as
 * soon as it aborts (clearing the timer, so nothing is left pending).
 *
 * `node:timers/promises` does the same, but its Node-compatibility layer
 * cost a fifth of the CPU in the pipeline benchmark (WORKERS=500,
 * LATENCY_SCALE=0.01; CPU profile in the issue #5 note).
 *
 * @example
 * ```ts
 * import { delay } from "./delay.ts";
 * await delay(10, { signal: AbortSignal.timeout(1000) });
 * ```
 */
export function delay(
  ms: number,
  options: { signal?: AbortSignal } = {},
): Promise<void> {
  const { signal } = options;
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
