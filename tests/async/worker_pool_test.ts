import assert from "node:assert/strict";
import { Channel } from "../../lib/async/channel.ts";
import { WorkerPool } from "../../lib/async/worker_pool.ts";

function poolOver<T>(
  channel: Channel<T>,
  process: (job: T, signal: AbortSignal) => Promise<void>,
  concurrency: number,
  onError?: (error: unknown, job: T) => void,
) {
  return new WorkerPool<T>({
    receive: (options) => channel.receive(options),
    process,
    concurrency,
    ...(onError ? { onError } : {}),
  });
}

Deno.test("WorkerPool runs N jobs at once, and no more", async () => {
  const channel = new Channel<number>({ capacity: 10 });
  const gates = Array.from({ length: 6 }, () => Promise.withResolvers<void>());
  const started: number[] = [];
  let startedEnough = Promise.withResolvers<void>();
  let expected = 3;
  const pool = poolOver(channel, async (job) => {
    started.push(job);
    if (started.length === expected) startedEnough.resolve();
    await gates[job]!.promise;
  }, 3);
  pool.start();
  for (let job = 0; job < 6; job++) channel.trySend(job);
  await startedEnough.promise;
  await new Promise((resolve) => setTimeout(resolve, 5));
  assert.equal(pool.busy, 3);
  assert.deepEqual(
    started,
    [0, 1, 2],
    "a fourth job must wait for a free worker",
  );

  expected = 4;
  startedEnough = Promise.withResolvers();
  gates[0]!.resolve();
  await startedEnough.promise;
  assert.deepEqual(started, [0, 1, 2, 3]);

  channel.close();
  for (const gate of gates) gate.resolve();
  await pool.done;
  assert.deepEqual(started, [0, 1, 2, 3, 4, 5]);
  assert.equal(pool.state, "stopped");
});

Deno.test("WorkerPool keeps a worker alive when its job throws", async () => {
  const channel = new Channel<number>({ capacity: 10 });
  const done: number[] = [];
  const errors: number[] = [];
  const pool = poolOver(
    channel,
    (job) => {
      if (job % 2 === 0) return Promise.reject(new Error(`job ${job} broke`));
      done.push(job);
      return Promise.resolve();
    },
    1,
    (_error, job) => errors.push(job),
  );
  pool.start();
  for (let job = 0; job < 6; job++) channel.trySend(job);
  channel.close();
  await pool.done;
  assert.deepEqual(done, [1, 3, 5]);
  assert.deepEqual(errors, [0, 2, 4]);
});

Deno.test("WorkerPool drains every queued job after the source closes", async () => {
  const channel = new Channel<number>({ capacity: 100 });
  const done: number[] = [];
  const pool = poolOver(channel, async (job) => {
    await Promise.resolve();
    done.push(job);
  }, 5);
  for (let job = 0; job < 100; job++) channel.trySend(job);
  channel.close();
  pool.start();
  await pool.done;
  assert.deepEqual(
    done.sort((a, b) => a - b),
    Array.from({ length: 100 }, (_, i) => i),
  );
});

Deno.test("WorkerPool.abort() aborts running jobs and takes no more", async () => {
  const channel = new Channel<number>({ capacity: 10 });
  const seen: number[] = [];
  const running = Promise.withResolvers<void>();
  const pool = poolOver(channel, async (job, signal) => {
    seen.push(job);
    running.resolve();
    await new Promise((_, reject) => {
      signal.addEventListener("abort", () => reject(signal.reason), {
        once: true,
      });
    });
  }, 1);
  pool.start();
  channel.trySend(1);
  channel.trySend(2);
  await running.promise;
  await pool.abort(new Error("stop"));
  assert.deepEqual(seen, [1]);
  assert.equal(pool.state, "stopped");
  assert.equal(channel.size, 1, "job 2 was left in the queue");
});

Deno.test("WorkerPool refuses a concurrency below 1", () => {
  assert.throws(
    () => poolOver(new Channel<number>(), () => Promise.resolve(), 0),
    RangeError,
  );
});
