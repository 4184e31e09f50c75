import assert from "node:assert/strict";
import { TurnGate } from "../../lib/async/turn_gate.ts";

/** Runs every microtask queued so far, and the ones they queue, many deep. */
async function drainMicrotasks(): Promise<void> {
  for (let tick = 0; tick < 100; tick++) await Promise.resolve();
}

Deno.test("TurnGate lets no one through within the turn they began waiting in", async () => {
  const gate = new TurnGate();
  let passed = false;
  gate.wait().then(() => passed = true);
  await drainMicrotasks();
  assert.equal(passed, false);
  assert.equal(gate.waiting, 1);
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.equal(passed, true);
  assert.equal(gate.waiting, 0);
});

Deno.test("TurnGate lets every wait of one turn through together, in the order they began", async () => {
  const gate = new TurnGate();
  const order: number[] = [];
  const waits = [1, 2, 3].map((n) => gate.wait().then(() => order.push(n)));
  assert.equal(gate.waiting, 3);
  // Whatever comes first after the gate opens sees all three through.
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.deepEqual(order, [1, 2, 3]);
  await Promise.all(waits);
});

Deno.test("TurnGate: a wait begun as the gate opens waits for its next opening", async () => {
  const gate = new TurnGate();
  const seen: string[] = [];
  const again = gate.wait().then(() => {
    seen.push("first");
    return gate.wait().then(() => seen.push("second"));
  });
  await new Promise((resolve) => setTimeout(resolve, 0));
  await drainMicrotasks();
  assert.deepEqual(seen, ["first"]);
  assert.equal(gate.waiting, 1);
  await again;
  assert.deepEqual(seen, ["first", "second"]);
});
