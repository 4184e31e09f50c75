import assert from "node:assert/strict";
import { fc } from "../deps.ts";
import { Channel, ChannelClosedError } from "../../lib/async/channel.ts";

/** Resolves after every queued microtask and one macrotask have run. */
const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

Deno.test("Channel delivers values in FIFO order", async () => {
  const channel = new Channel<number>({ capacity: 5 });
  for (const value of [1, 2, 3, 4, 5]) await channel.send(value);
  const received = [];
  for (let index = 0; index < 5; index++) {
    received.push(await channel.receive());
  }
  assert.deepEqual(received, [1, 2, 3, 4, 5]);
});

Deno.test("Channel buffers up to its capacity and no further", () => {
  const channel = new Channel<string>({ capacity: 2 });
  assert.equal(channel.trySend("a"), true);
  assert.equal(channel.trySend("b"), true);
  assert.equal(channel.trySend("c"), false);
  assert.equal(channel.size, 2);
});

Deno.test("Channel.trySend() hands a value to a waiting receiver even with no buffer", async () => {
  const channel = new Channel<string>();
  const received = channel.receive();
  assert.equal(channel.trySend("x"), true);
  assert.equal(await received, "x");
  assert.equal(channel.trySend("y"), false, "no receiver and no buffer");
});

Deno.test("Channel.send() waits while the buffer is full", async () => {
  const channel = new Channel<number>({ capacity: 1 });
  await channel.send(1);
  let delivered = false;
  const sending = channel.send(2).then(() => delivered = true);
  await settle();
  assert.equal(delivered, false, "second send must wait for room");
  assert.equal(await channel.receive(), 1);
  await sending;
  assert.equal(delivered, true);
  assert.equal(await channel.receive(), 2);
});

Deno.test("Channel.send() gives up when its signal aborts, and the value is not delivered", async () => {
  const channel = new Channel<number>({ capacity: 1 });
  channel.trySend(1);
  const controller = new AbortController();
  const sending = channel.send(2, { signal: controller.signal });
  controller.abort(new Error("gave up"));
  await assert.rejects(sending, /gave up/);
  assert.deepEqual(channel.tryReceive(), { ok: true, value: 1 });
  assert.deepEqual(channel.tryReceive(), { ok: false });
});

Deno.test("Channel.receive() gives up when its signal aborts", async () => {
  const channel = new Channel<number>({ capacity: 1 });
  const controller = new AbortController();
  const receiving = channel.receive({ signal: controller.signal });
  controller.abort(new Error("stop"));
  await assert.rejects(receiving, /stop/);
  // The aborted receiver must not swallow a later value.
  channel.trySend(7);
  assert.equal(await channel.receive(), 7);
});

Deno.test("Channel.close() wakes every waiting receiver with ChannelClosedError", async () => {
  const channel = new Channel<number>({ capacity: 3 });
  const receivers = [channel.receive(), channel.receive(), channel.receive()];
  channel.close();
  for (const receiving of receivers) {
    await assert.rejects(receiving, ChannelClosedError);
  }
});

Deno.test("Channel.close() rejects waiting senders with their unsent value", async () => {
  const channel = new Channel<string>({ capacity: 0 });
  const sending = channel.send("lost?");
  channel.close();
  const error = await sending.then(() => undefined, (error) => error);
  assert.ok(error instanceof ChannelClosedError);
  assert.equal(error.value, "lost?");
});

Deno.test("Channel.send() to a closed channel rejects with the value it could not send", async () => {
  const channel = new Channel<number>({ capacity: 1 });
  channel.close();
  const sending = channel.send(5);
  assert.ok(sending instanceof Promise);
  const error = await sending.catch((error) => error);
  assert.ok(error instanceof ChannelClosedError);
  assert.equal(error.value, 5);
});

Deno.test("a closed Channel still delivers what it buffered, then ends iteration", async () => {
  const channel = new Channel<number>({ capacity: 3 });
  channel.trySend(1);
  channel.trySend(2);
  channel.close();
  assert.throws(() => channel.trySend(3), ChannelClosedError);
  const received = [];
  for await (const value of channel) received.push(value);
  assert.deepEqual(received, [1, 2]);
  await assert.rejects(channel.receive(), ChannelClosedError);
});

Deno.test("Channel rejects a capacity that is not a non-negative integer", () => {
  assert.throws(() => new Channel({ capacity: -1 }), RangeError);
  assert.throws(() => new Channel({ capacity: 1.5 }), RangeError);
});

Deno.test("Channel with many concurrent senders, receivers and a close loses and duplicates nothing (property)", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 0, max: 4 }),
      fc.integer({ min: 1, max: 6 }),
      fc.integer({ min: 1, max: 6 }),
      fc.integer({ min: 0, max: 40 }),
      fc.integer({ min: 0, max: 60 }),
      fc.scheduler(),
      async (capacity, senders, receivers, perSender, closeAfterTicks, s) => {
        const channel = new Channel<string>({ capacity });
        const sent: string[] = [];
        const refused: string[] = [];
        const received: string[] = [];
        const sending = Array.from({ length: senders }, async (_, sender) => {
          for (let index = 0; index < perSender; index++) {
            const value = `${sender}:${index}`;
            await s.schedule(Promise.resolve());
            try {
              await channel.send(value);
              sent.push(value);
            } catch (error) {
              if (!(error instanceof ChannelClosedError)) throw error;
              assert.equal(error.value, value);
              refused.push(value);
              return;
            }
          }
        });
        const receiving = Array.from({ length: receivers }, async () => {
          for await (const value of channel) {
            received.push(value);
            await s.schedule(Promise.resolve());
          }
        });
        const closing = (async () => {
          for (let tick = 0; tick < closeAfterTicks; tick++) {
            await s.schedule(Promise.resolve());
          }
          channel.close();
        })();
        await s.waitFor(Promise.all([...sending, closing]));
        await s.waitFor(Promise.all(receiving));
        // Every value a send() reported delivered was received exactly once,
        // and nothing was received that was not sent.
        assert.deepEqual([...received].sort(), [...sent].sort());
        assert.equal(new Set(received).size, received.length);
        for (const value of refused) assert.ok(!received.includes(value));
        // Each sender's values arrive in the order it sent them.
        for (let sender = 0; sender < senders; sender++) {
          const mine = received.filter((value) =>
            value.startsWith(`${sender}:`)
          );
          const order = mine.map((value) => Number(value.split(":")[1]));
          assert.deepEqual(order, [...order].sort((a, b) => a - b));
        }
      },
    ),
    { numRuns: 150 },
  );
});
