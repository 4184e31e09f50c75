import assert from "node:assert/strict";
import { doublingDelay } from "../../lib/async/backoff.ts";

Deno.test("doublingDelay() starts at firstMs, doubles per attempt and stops at maxMs", () => {
  const wait = doublingDelay(50, 1000);
  assert.deepEqual([1, 2, 3, 4, 5, 6, 20].map(wait), [
    50,
    100,
    200,
    400,
    800,
    1000,
    1000,
  ]);
});

Deno.test("doublingDelay() refuses a ceiling below the first wait", () => {
  assert.throws(() => doublingDelay(100, 10), RangeError);
  assert.throws(() => doublingDelay(0, 10), RangeError);
});
