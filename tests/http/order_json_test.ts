import assert from "node:assert/strict";
import { fc } from "../deps.ts";
import {
  type Order,
  ORDER_STATUSES,
  STEPS,
  type TimelineEntry,
} from "../../lib/orders/order.ts";
import {
  formatTime,
  orderJsonText,
  toOrderJson,
} from "../../lib/http/order_json.ts";
import { orderSchema } from "../../lib/http/schemas.ts";

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

const arbitraryEntry = fc.oneof(
  fc.record({
    type: fc.constant("status" as const),
    status: fc.constantFrom(...ORDER_STATUSES),
  }),
  fc.record({
    type: fc.constant("step_finished" as const),
    step: fc.constantFrom(...STEPS),
    attempt: fc.integer({ min: 1, max: 100 }),
  }),
  fc.record({
    type: fc.constant("attempt_failed" as const),
    attempt: fc.integer({ min: 1, max: 100 }),
    reason: fc.string({ unit: "binary" }),
  }),
  fc.record({
    type: fc.constant("interrupted" as const),
    attempt: fc.integer({ min: 1, max: 100 }),
  }),
  fc.record({ type: fc.constant("cancel_requested" as const) }),
);

const time = fc.integer({ min: 0, max: Date.UTC(2100, 0, 1) });

const arbitraryOrder: fc.Arbitrary<Order> = fc.record({
  id: fc.constant("ORD-01M8T2NBSN3VCGDH67EJTPXBNB"),
  // Any text a client or a failure could put there: quotes, backslashes,
  // control characters, lone surrogates.
  customer_id: fc.string({ unit: "binary" }),
  restaurant_id: fc.string({ unit: "binary" }),
  items: fc.array(fc.string({ unit: "binary" }), { minLength: 1 }),
  status: fc.constantFrom(...ORDER_STATUSES),
  created_at: time,
  updated_at: time,
  attempts: fc.integer({ min: 0, max: 100 }),
  failure_reason: fc.option(fc.string({ unit: "binary" })),
  cancel_requested: fc.boolean(),
  timeline: fc.array(
    fc.tuple(time, arbitraryEntry).map(([at, entry]) =>
      ({ at, ...entry }) as TimelineEntry
    ),
    { maxLength: 12 },
  ),
});

Deno.test("orderJsonText writes exactly what JSON.stringify writes of the schema's output for toOrderJson(order)", () => {
  fc.assert(
    fc.property(arbitraryOrder, (order) => {
      // The schema the OpenAPI component comes from takes the form as it is.
      const json = orderSchema.parse(toOrderJson(order));
      assert.deepEqual(json, toOrderJson(order));
      assert.equal(orderJsonText(order), JSON.stringify(json));
    }),
    { numRuns: 2000 },
  );
});
