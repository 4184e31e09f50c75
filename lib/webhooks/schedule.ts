/**
 * When a webhook message is tried again: Svix's schedule (at once, then
 * after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h), each wait scaled by
 * `WEBHOOK_SCHEDULE_SCALE` (tests run the whole schedule in seconds) and
 * spread by up to a tenth either way, so that messages that failed
 * together (an endpoint down) do not all come back in the same instant.
 *
 * @module
 */

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;

/** The wait before each attempt, the first at once: eight attempts in all. */
export const RETRY_SCHEDULE_MS: readonly number[] = [
  0,
  5 * SECOND,
  5 * MINUTE,
  30 * MINUTE,
  2 * HOUR,
  5 * HOUR,
  10 * HOUR,
  10 * HOUR,
];

/** How long an endpoint may fail every message before it is disabled. */
export const DISABLE_AFTER_MS = 5 * 24 * HOUR;

/**
 * The wait before attempt `attempt` (from 1), scaled by `scale`, or
 * `undefined` when the schedule has no such attempt (the message has
 * failed for good). `random` is in [0, 1).
 */
export function retryDelayMs(
  attempt: number,
  scale: number,
  random: () => number = Math.random,
): number | undefined {
  const base = RETRY_SCHEDULE_MS[attempt - 1];
  if (base === undefined) return undefined;
  const jitter = 1 + (random() * 2 - 1) / 10;
  return Math.round(base * scale * jitter);
}
