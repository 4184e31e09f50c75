import assert from "node:assert/strict";
import { KeyedMutex, Mutex } from "../../lib/async/mutex.ts";

Deno.test("Mutex admits one holder at a time, in the order they asked", async () => {
  const mutex = new Mutex();
  const log: string[] = [];
  const worker = async (name: string) => {
    const release = await mutex.acquire();
    log.push(`${name} in`);
    await new Promise((resolve) => setTimeout(resolve, 1));
    log.push(`${name} out`);
    release();
  };
  await Promise.all([worker("a"), worker("b"), worker("c")]);
  assert.deepEqual(log, ["a in", "a out", "b in", "b out", "c in", "c out"]);
  assert.equal(mutex.locked, false);
});

Deno.test("Mutex release is idempotent", async () => {
  const mutex = new Mutex();
  const release = await mutex.acquire();
  release();
  release();
  const again = await mutex.acquire();
  assert.equal(mutex.locked, true);
  again();
  assert.equal(mutex.locked, false);
});

Deno.test("KeyedMutex serialises one key, lets other keys run, and forgets idle keys", async () => {
  const locks = new KeyedMutex();
  const releaseA = await locks.acquire("a");
  const releaseB = await locks.acquire("b"); // not blocked by "a"
  let secondA = false;
  const waiting = locks.acquire("a").then((release) => {
    secondA = true;
    return release;
  });
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.equal(secondA, false);
  releaseA();
  (await waiting)();
  releaseB();
  assert.equal(locks.size, 0);
});
