/**
 * The SQLite store on a disk that fills up: a real 2 MB tmpfs, mounted for
 * the test. Mounting needs root; CI runs as root and requires these tests.
 */

import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { postOrder } from "./load.ts";
import { startService } from "./service_process.ts";

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
      // The workers' next write finds the disk full and hands them the
      // reserve; new orders are refused from then on, and /ready says so.
      let refusedStatus = 0;
      for (let i = 0; i < 100 && refusedStatus !== 503; i++) {
        const refused = await postOrder(service.url);
        refusedStatus = refused.status;
        if (refusedStatus === 201) accepted.push((await refused.json()).id);
        else await refused.body?.cancel();
        if (refusedStatus !== 503) await sleep(20);
      }
      assert.equal(refusedStatus, 503, "new orders are refused");
      const ready = await fetch(`${service.url}/ready`);
      assert.equal(ready.status, 503, "/ready says the store refuses orders");
      await ready.body?.cancel();

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
      // A refusal of new orders counts until one is taken, or for 5 s.
      let readyAgain = 0;
      for (let i = 0; i < 100 && readyAgain !== 200; i++) {
        const ready = await fetch(`${service.url}/ready`);
        readyAgain = ready.status;
        await ready.body?.cancel();
        if (readyAgain !== 200) await sleep(100);
      }
      assert.equal(readyAgain, 200, "/ready again once space is back");
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
    "start-up on a full disk, with interrupted orders to recover, comes up: it serves reads, refuses new orders with 503, and recovers and takes orders once space is free",
  ignore: skipReason !== undefined,
  async fn() {
    await withTmpfs("2m", async (dir) => {
      // A store left by a crash with orders mid-processing: start-up must
      // write to recover them.
      const store = `sqlite:${dir}/orders.db`;
      const first = await startService({ STORE: store, LATENCY_SCALE: "1" });
      const accepted: string[] = [];
      for (let i = 0; i < 5; i++) {
        const response = await postOrder(first.url);
        assert.equal(response.status, 201);
        accepted.push((await response.json()).id);
      }
      await sleep(200);
      first.kill("SIGKILL");
      await first.status;
      // What the killed process left in its log goes into the file now,
      // and the log is cut to nothing: otherwise the start-up's own
      // checkpoint, when the disk refuses it, frees the log's space, and
      // with it room enough for new orders before the filler is removed
      // (1 start in 5 with two isolates, whose first run leaves a longer log).
      const db = new DatabaseSync(`${dir}/orders.db`);
      db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
      db.close();
      const filler = await fillDisk(dir);
      const second = await startService({ STORE: store, LATENCY_SCALE: "0" });
      const read = await fetch(`${second.url}/orders/${accepted[0]}`);
      assert.equal(read.status, 200, "reads are served");
      await read.body?.cancel();
      const refused = await postOrder(second.url);
      assert.equal(refused.status, 503);
      assert.equal(
        refused.headers.get("content-type"),
        "application/problem+json",
      );
      await refused.body?.cancel();
      await Deno.remove(filler);
      const deadline = Date.now() + 15_000;
      let status = 0;
      while (status !== 201 && Date.now() < deadline) {
        const response = await postOrder(second.url);
        status = response.status;
        if (status === 201) accepted.push((await response.json()).id);
        else await response.body?.cancel();
        if (status !== 201) await sleep(100);
      }
      assert.equal(status, 201, "new orders are taken once space is free");
      await waitForTerminal(second.url, accepted, 15_000);
      second.kill("SIGTERM");
      assert.equal((await second.status).code, 0);
    });
  },
});

Deno.test({
  name:
    "a disk filled by the service alone strands no acknowledged order: new orders get 503 while the accepted ones finish, and the log stays within its bound",
  ignore: skipReason !== undefined,
  async fn() {
    await withTmpfs("2m", async (dir) => {
      const service = await startService({
        STORE: `sqlite:${dir}/orders.db`,
        LATENCY_SCALE: "0.01",
        QUEUE_CAPACITY: "100",
      });
      const accepted: string[] = [];
      let refused = 0;
      let largestLog = 0;
      // Until the disk has refused a good many: well past the point where
      // SQLite's own log alone filled it (about 90 orders).
      while (refused < 200) {
        const responses = await Promise.all(
          Array.from({ length: 20 }, () => postOrder(service.url)),
        );
        let queueFull = false;
        for (const response of responses) {
          if (response.status === 201) {
            accepted.push((await response.json()).id);
            continue;
          }
          assert.equal(response.status, 503);
          const type = (await response.json()).type as string;
          if (type.endsWith(":queue-full")) queueFull = true;
          else {
            assert.match(type, /:store-unavailable$/);
            refused++;
          }
        }
        // The workers are behind: let them catch up, not the disk.
        if (queueFull) await sleep(50);
        const log = await Deno.stat(`${dir}/orders.db-wal`).catch(() =>
          undefined
        );
        largestLog = Math.max(largestLog, log?.size ?? 0);
        assert.ok(accepted.length < 20_000, "the disk never filled");
      }
      assert.ok(accepted.length > 200, `only ${accepted.length} accepted`);
      // 512 KiB and one batch of pages.
      assert.ok(largestLog < 1024 * 1024, `the log reached ${largestLog} B`);
      await waitForTerminal(service.url, accepted, 30_000);
      service.kill("SIGTERM");
      assert.equal((await service.status).code, 0);
    });
  },
});

/** Waits until every order of `ids` has a terminal status. */
async function waitForTerminal(
  url: string,
  ids: readonly string[],
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let stuck: Array<{ id: string; status: string }> = [];
  let unfinished = ids;
  while (unfinished.length > 0) {
    const orders = await Promise.all(unfinished.map(async (id) => {
      const response = await fetch(`${url}/orders/${id}`);
      return await response.json();
    }));
    stuck = orders.filter((order) => !TERMINAL.has(order.status));
    unfinished = stuck.map((order) => order.id);
    if (unfinished.length === 0) return;
    assert.ok(
      Date.now() < deadline,
      `${unfinished.length} acknowledged orders unfinished, e.g. ${
        JSON.stringify(stuck.slice(0, 3))
      }`,
    );
    await sleep(200);
  }
}
