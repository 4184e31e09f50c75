import assert from "node:assert/strict";
import { formatTime } from "../../lib/orders/order.ts";

Deno.test("formatTime writes what Date.prototype.toISOString writes", () => {
  const times = [
    0,
    59_999,
    60_000,
    Date.UTC(2026, 11, 2, 0, 32, 22, 325),
    Date.UTC(2026, 11, 2, 0, 32, 59, 999),
    Date.UTC(2026, 11, 2, 0, 33, 0, 0),
    Date.UTC(2026, 11, 31, 23, 59, 59, 5),
    Date.UTC(2027, 0, 1, 0, 0, 0, 40),
    Date.UTC(9999, 11, 31, 23, 59, 59, 999),
    Date.UTC(10000, 0, 1), // a signed six-digit year
    -1, // before 1970
  ];
  // Random times of this era, in an order that moves between minutes.
  for (let index = 0; index < 5000; index++) {
    times.push(Math.floor(Math.random() * Date.UTC(2100, 0, 1)));
  }
  // Neighbours within and across a minute, forwards and back.
  const base = Date.UTC(2026, 11, 2, 0, 32, 58, 990);
  for (let step = -30; step <= 30; step++) times.push(base + step * 7);
  for (const time of times) {
    assert.equal(formatTime(time), new Date(time).toISOString(), `${time}`);
  }
});
