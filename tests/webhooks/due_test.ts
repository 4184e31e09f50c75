import assert from "node:assert/strict";
import { pickDue } from "../../lib/webhooks/due.ts";

const d = (
  id: string,
  order: string,
  attempts: number,
  next: number | null,
) => ({
  id,
  order_id: order,
  attempts,
  next_attempt_at: next,
});

Deno.test("pickDue: one order's messages go one at a time, in order; a message waiting for its retry lets later ones go; held and not-yet-due ones wait", () => {
  const pending = [
    d("1", "A", 0, 0),
    d("2", "A", 0, 0),
    d("3", "B", 1, 500), // B's first failed, retry not due yet
    d("4", "B", 0, 0),
    d("5", "C", 0, 0),
  ];
  // A's second waits for its first; B's later message goes while the
  // first waits for its retry; C's goes.
  assert.deepEqual(pickDue(pending, new Set(), 100, 10).map((x) => x.id), [
    "1",
    "4",
    "5",
  ]);
  // With 1 and 4 in flight: nothing of A or B may go.
  assert.deepEqual(
    pickDue(pending, new Set(["1", "4"]), 100, 10).map((x) => x.id),
    ["5"],
  );
  // At 600 B's retry is due too; the limit counts.
  assert.deepEqual(pickDue(pending, new Set(), 600, 2).map((x) => x.id), [
    "1",
    "3",
  ]);
});
