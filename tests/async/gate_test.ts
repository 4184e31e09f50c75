import assert from "node:assert/strict";
import { Gate } from "../../lib/async/gate.ts";

const settledWithin = async (promise: Promise<unknown>, ms: number) => {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<"pending">((resolve) => {
    timer = setTimeout(() => resolve("pending"), ms);
  });
  try {
    return await Promise.race([
      promise.then(() => "resolved", () => "rejected"),
      late,
    ]);
  } finally {
    clearTimeout(timer);
  }
};

Deno.test("Gate: an open gate lets a wait through at once; a shut one holds every waiter until it opens", async () => {
  const gate = new Gate();
  assert.equal(await settledWithin(gate.wait(), 5), "resolved");
  gate.shut();
  assert.equal(gate.isOpen, false);
  const waits = [gate.wait(), gate.wait(), gate.wait()];
  assert.equal(await settledWithin(Promise.race(waits), 20), "pending");
  gate.open();
  assert.equal(await settledWithin(Promise.all(waits), 5), "resolved");
  gate.shut();
  const again = gate.wait();
  assert.equal(await settledWithin(again, 20), "pending");
  gate.open();
  await again;
});

Deno.test("Gate: an aborted signal rejects its wait only; end() rejects the rest and later waits at the shut gate", async () => {
  const gate = new Gate();
  gate.shut();
  const controller = new AbortController();
  const aborted = gate.wait(controller.signal);
  const other = gate.wait();
  controller.abort(new Error("stop"));
  await assert.rejects(aborted, /stop/);
  assert.equal(await settledWithin(other, 10), "pending");
  gate.end(new Error("ended"));
  await assert.rejects(other, /ended/);
  await assert.rejects(gate.wait(), /ended/);
  gate.open();
  await gate.wait();
});
