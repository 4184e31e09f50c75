/**
 * The SQLite store on a disk that fills up: a real 2 MB tmpfs, mounted for
 * the test. Mounting needs root; CI runs as root and requires these tests.
 */

import assert from "node:assert/strict";
import { postOrder } from "./load.ts";
import { runToExit, startService } from "./service_process.ts";

const TERMINAL = new Set(["completed", "failed", "cancelled"]);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function canMount(): boolean {
  if (Deno.build.os !== "linux" || Deno.uid() !== 0) return false;
  return true;
}

const skipReason = canMount()
  ? undefined
  : "mounting a tmpfs needs root on Linux";
if (skipReason && Deno.env.get("CI") === "true") {
  throw new Error(`The full-disk tests must run in CI: ${skipReason}`);
}

/** A fresh tmpfs of `size` mounted on a temporary directory. */
async function withTmpfs(
  size: string,
  body: (dir: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "order-service-full-" });
  const run = async (args: string[]) => {
    const output = await new Deno.Command(args[0]!, {
      args: args.slice(1),
      stdout: "null",
      stderr: "piped",
    }).output();
    if (!output.success) {
      throw new Error(
        `${args.join(" ")}: ${new TextDecoder().decode(output.stderr)}`,
      );
    }
  };
  await run(["mount", "-t", "tmpfs", "-o", `size=${size}`, "tmpfs", dir]);
  try {
    await body(dir);
  } finally {
    await run(["umount", "-l", dir]);
    await Deno.remove(dir);
  }
}

/** Writes a file until the disk is full; returns its path. */
async function fillDisk(dir: string): Promise<string> {
  const path = `${dir}/filler`;
  const file = await Deno.open(path, { write: true, create: true });
  const chunk = new Uint8Array(4096);
  try {
    while (true) await file.write(chunk);
  } catch (error) {
    if (!String(error).includes("No space left")) throw error;
  } finally {
    file.close();
  }
  return path;
}

Deno.test({
  name:
    "a disk that fills while orders are processed strands none: every 201 finishes once space is back, without a restart",
  ignore: skipReason !== undefined,
  async fn() {
    await withTmpfs("2m", async (dir) => {
      const service = await startService({
        STORE: `sqlite:${dir}/orders.db`,
        LATENCY_SCALE: "0.05",
        WORKERS: "5",
        QUEUE_CAPACITY: "200",
      });
      const accepted: string[] = [];
      for (let i = 0; i < 50; i++) {
        const response = await postOrder(service.url);
        assert.equal(response.status, 201);
        accepted.push((await response.json()).id);
      }
      const filler = await fillDisk(dir);
      // Workers keep writing step records: the store refuses them.
      let readyStatus = 0;
      for (let i = 0; i < 100 && readyStatus !== 503; i++) {
        const ready = await fetch(`${service.url}/ready`);
        readyStatus = ready.status;
        await ready.body?.cancel();
        if (readyStatus !== 503) await sleep(20);
      }
      assert.equal(readyStatus, 503, "/ready says the store refuses writes");
      const refused = await postOrder(service.url);
      assert.equal(refused.status, 503);
      await refused.body?.cancel();

      await Deno.remove(filler);
      const deadline = Date.now() + 15_000;
      let unfinished = accepted;
      // The last answers for the unfinished ones: a failure says where
      // each order stopped (status, timeline), not only which.
      let stuck: Array<{ id: string; status: string }> = [];
      while (unfinished.length > 0 && Date.now() < deadline) {
        const orders = await Promise.all(unfinished.map(async (id) => {
          const response = await fetch(`${service.url}/orders/${id}`);
          return await response.json();
        }));
        stuck = orders.filter((order) => !TERMINAL.has(order.status));
        unfinished = stuck.map((order) => order.id);
        if (unfinished.length > 0) await sleep(100);
      }
      assert.deepEqual(
        unfinished,
        [],
        `every acknowledged order finished; unfinished: ${
          JSON.stringify(stuck)
        }; last log records: ${JSON.stringify(service.records.slice(-20))}`,
      );
      const ready = await fetch(`${service.url}/ready`);
      assert.equal(ready.status, 200);
      await ready.body?.cancel();
      assert.ok(
        !service.records.some((record) =>
          String(record.message).includes("failed unexpectedly")
        ),
        "no worker gave an order up",
      );
      service.kill("SIGTERM");
      assert.equal((await service.status).code, 0);
    });
  },
});

Deno.test({
  name:
    "start-up on a full disk, with interrupted orders to recover, exits with code 2 and a message, not a stack trace",
  ignore: skipReason !== undefined,
  async fn() {
    await withTmpfs("2m", async (dir) => {
      // A store left by a crash with orders mid-processing: start-up must
      // write to recover them.
      const first = await startService({ STORE: `sqlite:${dir}/orders.db` });
      for (let i = 0; i < 5; i++) {
        const response = await postOrder(first.url);
        assert.equal(response.status, 201);
        await response.body?.cancel();
      }
      await sleep(200);
      first.kill("SIGKILL");
      await first.status;
      await fillDisk(dir);
      const { code, stderr } = await runToExit({
        STORE: `sqlite:${dir}/orders.db`,
      });
      assert.equal(code, 2, stderr);
      assert.match(stderr, /order-service: .*orders\.db/);
      assert.doesNotMatch(stderr, /\n\s+at /, "no stack trace");
    });
  },
});
