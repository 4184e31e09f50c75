import assert from "node:assert/strict";
import { retryDelayMs } from "../../lib/webhooks/schedule.ts";

Deno.test("retryDelayMs: Svix's eight attempts, scaled, within a tenth either way; none after the eighth", () => {
  const minute = 60_000;
  const hour = 60 * minute;
  const expected = [
    0,
    5000,
    5 * minute,
    30 * minute,
    2 * hour,
    5 * hour,
    10 * hour,
    10 * hour,
  ];
  expected.forEach((base, index) => {
    assert.equal(retryDelayMs(index + 1, 1, () => 0.5), base);
    assert.equal(retryDelayMs(index + 1, 1, () => 0), Math.round(base * 0.9));
    assert.equal(
      retryDelayMs(index + 1, 0.001, () => 0.5),
      Math.round(base * 0.001),
    );
  });
  assert.equal(retryDelayMs(9, 1), undefined);
});
