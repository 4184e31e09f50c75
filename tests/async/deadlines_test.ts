import assert from "node:assert/strict";
import { Deadlines } from "../../lib/async/deadlines.ts";

Deno.test("Deadlines fires an expired deadline once and leaves no timer when idle", async () => {
  const deadlines = new Deadlines(5);
  const fired = Promise.withResolvers<void>();
  let count = 0;
  deadlines.add(10, () => {
    count++;
    fired.resolve();
  });
  await fired.promise;
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(count, 1);
  assert.equal(deadlines.size, 0);
  assert.equal(deadlines.running, false, "no timer is left when idle");
});

Deno.test("Deadlines keeps one timer across back-to-back deadlines, stopping it only when a check finds none", async () => {
  const deadlines = new Deadlines(5);
  for (let request = 0; request < 100; request++) {
    const cancel = deadlines.add(1000, () => {});
    cancel(); // the set is empty between requests under load
    assert.equal(deadlines.running, true);
  }
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(deadlines.running, false);
});

Deno.test("Deadlines does not fire a cancelled deadline", async () => {
  const deadlines = new Deadlines(5);
  let fired = false;
  const cancel = deadlines.add(10, () => fired = true);
  const keep = deadlines.add(1000, () => {});
  cancel();
  await new Promise((resolve) => setTimeout(resolve, 30));
  assert.equal(fired, false);
  keep();
  assert.equal(deadlines.size, 0);
});
