import assert from "node:assert/strict";
import { getLogger } from "@logtape/logtape";
import { ChannelClosedError } from "../../lib/async/channel.ts";
import { Gate } from "../../lib/async/gate.ts";
import {
  PAUSE_RECORD,
  ProcessingPause,
} from "../../lib/orders/processing_pause.ts";
import { MemoryControlRecords } from "../../lib/store/memory_control.ts";

const logger = getLogger(["order-service-test"]);

Deno.test("ProcessingPause: set() records the state before holding to it; sync() takes another instance's; a record that is not a state is ignored", async () => {
  const control = new MemoryControlRecords();
  const gate = new Gate();
  const pause = new ProcessingPause({ control, gate, logger, now: () => 42 });
  assert.deepEqual(await pause.set(true), { paused: true, since: 42 });
  assert.equal(gate.isOpen, false);
  assert.deepEqual(JSON.parse((await control.read(PAUSE_RECORD))!), {
    paused: true,
    since: 42,
  });
  // Another instance resumed, through the store.
  await control.write(
    PAUSE_RECORD,
    JSON.stringify({ paused: false, since: 50 }),
  );
  await pause.sync();
  assert.equal(gate.isOpen, true);
  assert.deepEqual(pause.state, { paused: false, since: 50 });
  await control.write(PAUSE_RECORD, "not json");
  await pause.sync();
  assert.deepEqual(pause.state, { paused: false, since: 50 });
});

Deno.test("ProcessingPause: a drain while paused ends the workers' wait where the store keeps orders, and lifts it where it does not; a pause during the drain never holds the workers", async () => {
  for (const keeps of [true, false]) {
    const gate = new Gate();
    const pause = new ProcessingPause({
      control: new MemoryControlRecords(),
      gate,
      logger,
    });
    await pause.set(true);
    const waiting = gate.wait();
    assert.equal(pause.drain(keeps), keeps ? "kept" : "lifted");
    if (keeps) await assert.rejects(waiting, ChannelClosedError);
    else await waiting;
  }
  const gate = new Gate();
  const pause = new ProcessingPause({
    control: new MemoryControlRecords(),
    gate,
    logger,
  });
  assert.equal(pause.drain(false), "none");
  await pause.set(true);
  assert.equal(gate.isOpen, true, "not shut once draining");
  await gate.wait();
});
