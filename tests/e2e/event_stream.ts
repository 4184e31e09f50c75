/**
 * Following a service's event streams in end-to-end tests: every event of a
 * stream collected as it arrives, and waiting for a condition to hold.
 */

import assert from "node:assert/strict";

/** One server-sent event. */
export interface SentEvent {
  event: string;
  id: string | undefined;
  data: string;
}

/**
 * Collects the events of the stream at `url` until `signal` aborts; `headers`
 * go with the request (`Last-Event-ID` to resume).
 */
export function collectEvents(
  url: string,
  signal: AbortSignal,
  headers: Record<string, string> = {},
): { events: SentEvent[]; opened: Promise<void>; done: Promise<void> } {
  const events: SentEvent[] = [];
  const opened = Promise.withResolvers<void>();
  const done = (async () => {
    const response = await fetch(url, { signal, headers });
    assert.equal(response.status, 200);
    opened.resolve();
    let buffered = "";
    try {
      for await (
        const text of response.body!.pipeThrough(new TextDecoderStream())
      ) {
        buffered += text;
        let end;
        while ((end = buffered.indexOf("\n\n")) !== -1) {
          const block = buffered.slice(0, end);
          buffered = buffered.slice(end + 2);
          const field = (name: string) =>
            block.split("\n").find((line) => line.startsWith(`${name}: `))
              ?.slice(name.length + 2);
          const data = field("data");
          if (data !== undefined) {
            events.push({
              event: field("event") ?? "message",
              id: field("id"),
              data,
            });
          }
        }
      }
    } catch (error) {
      if (!signal.aborted) throw error;
    }
  })();
  done.catch(opened.reject);
  return { events, opened: opened.promise, done };
}

/** Calls `check` until it returns a value, failing after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined> | T | undefined,
  timeoutMs: number,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (true) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`Timed out: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
