import assert from "node:assert/strict";
import { BulkRetry } from "../../lib/orders/bulk_retry.ts";
import {
  BulkRetryInProgressError,
  BulkRetryKeyConflictError,
} from "../../lib/orders/errors.ts";
import { MemoryControlRecords } from "../../lib/store/memory_control.ts";

Deno.test("BulkRetry: a second call with a running key is refused (409), not run; once answered it is replayed; another filter is refused (422)", async () => {
  const release = Promise.withResolvers<void>();
  let runs = 0;
  const bulk = new BulkRetry({
    control: new MemoryControlRecords(),
    retry: async () => {
      runs++;
      await release.promise;
      return 7;
    },
  });
  const first = bulk.run({ restaurantId: "r_1" }, "k");
  await assert.rejects(
    bulk.run({ restaurantId: "r_1" }, "k"),
    BulkRetryInProgressError,
  );
  release.resolve();
  assert.deepEqual(await first, { retried: 7, replayed: false });
  assert.deepEqual(await bulk.run({ restaurantId: "r_1" }, "k"), {
    retried: 7,
    replayed: true,
  });
  await assert.rejects(
    bulk.run({ restaurantId: "r_2" }, "k"),
    BulkRetryKeyConflictError,
  );
  assert.equal(runs, 1);
  // Without a key every call runs.
  await bulk.run({}, undefined);
  await bulk.run({}, undefined);
  assert.equal(runs, 3);
});

Deno.test("BulkRetry: a key left running by a call that died is run again by a repeat once stale", async () => {
  const control = new MemoryControlRecords();
  let now = 1_000_000;
  const dying = new BulkRetry({
    control,
    now: () => now,
    retry: () => Promise.reject(new Error("instance died")),
  });
  await assert.rejects(dying.run({}, "k"), /instance died/);
  let runs = 0;
  const bulk = new BulkRetry({
    control,
    now: () => now,
    staleMs: 60_000,
    retry: () => Promise.resolve(++runs),
  });
  await assert.rejects(bulk.run({}, "k"), BulkRetryInProgressError);
  now += 60_001;
  assert.deepEqual(await bulk.run({}, "k"), { retried: 1, replayed: false });
  assert.deepEqual(await bulk.run({}, "k"), { retried: 1, replayed: true });
});
