import assert from "node:assert/strict";
import { delay } from "../../lib/async/delay.ts";

Deno.test("delay() resolves after its time", async () => {
  const startedAt = performance.now();
  await delay(20);
  assert.ok(performance.now() - startedAt >= 19);
});

Deno.test("delay() rejects with the signal's reason when aborted, leaving no timer", async () => {
  const controller = new AbortController();
  const waiting = delay(60_000, { signal: controller.signal });
  controller.abort(new Error("cancelled"));
  await assert.rejects(waiting, /cancelled/);
  // The sanitizer fails this test if the 60 s timer were still pending.
});

Deno.test("delay() with an already aborted signal rejects at once", async () => {
  await assert.rejects(
    delay(10, { signal: AbortSignal.abort(new Error("early")) }),
    /early/,
  );
});
