/**
 * `PARALLEL=2` as a user runs it (`deno task start`): two isolates of one
 * process serve one port, on a PostgreSQL store (each isolate an instance),
 * on the memory store (each isolate a shard) and on a SQLite file (each
 * isolate works the orders it owns), and the process answers
 * as one: every order is readable from any connection, a key makes one
 * order whichever connections its retries take, lists page every order
 * once, `/events` carries both isolates' changes, `/metrics` sums the
 * isolates, `/ready` answers for both, and SIGTERM drains both into one
 * summary.
 */

import assert from "node:assert/strict";
import { startService, TEST_PARALLEL } from "./service_process.ts";
import { collectEvents, waitFor } from "./event_stream.ts";
import { onNewConnection, postOnNewConnection } from "./load.ts";
import {
  freshSchema,
  postgresForTests,
  TEST_DATABASE_URL,
} from "../store/postgres_admin.ts";

const available = await postgresForTests();
// Every test here sets PARALLEL itself: CI's second pass (TEST_PARALLEL=2)
// would run each again unchanged.
const secondPass = TEST_PARALLEL !== undefined;

/** A test of its own PARALLEL, run in the first pass only. */
function parallelTest(name: string, fn: () => Promise<void>): void {
  Deno.test({ name, ignore: secondPass, fn });
}

/**
 * Sends `perKey` concurrent POSTs for each of `keys` idempotency keys, every
 * one on its own connection, and checks that each key made exactly one
 * order (one 201, the rest 200 with the same id); the order of each key.
 */
async function oneOrderPerKey(
  url: string,
  keys: number,
  perKey: number,
): Promise<Map<string, Set<string>>> {
  const answers = await Promise.all(
    Array.from({ length: keys * perKey }, async (_, index) => {
      const key = `key-${index % keys}`;
      const response = await postOnNewConnection(url, {
        "idempotency-key": key,
      });
      return { key, status: response.status, id: (await response.json()).id };
    }),
  );
  const byKey = new Map<string, Set<string>>();
  for (const answer of answers) {
    assert.ok([200, 201].includes(answer.status), String(answer.status));
    byKey.set(answer.key, (byKey.get(answer.key) ?? new Set()).add(answer.id));
  }
  assert.equal(byKey.size, keys);
  for (const [key, made] of byKey) assert.equal(made.size, 1, key);
  assert.equal(
    answers.filter((answer) => answer.status === 201).length,
    keys,
  );
  return byKey;
}

/**
 * Cancels each order on a connection of its own, expecting one of
 * `statuses`, and waits until it reads `cancelled`: within a second, so
 * with steps of 2 to 4 s a running step was aborted, not waited for.
 */
async function cancelEachWithinASecond(
  url: string,
  ids: string[],
  statuses: number[],
): Promise<void> {
  for (const id of ids) {
    const cancelled = await onNewConnection(`${url}/orders/${id}/cancel`, {
      method: "POST",
    });
    assert.ok(
      statuses.includes(cancelled.status),
      `${id}: ${cancelled.status}`,
    );
    await waitFor(`${id} cancelled within a second`, async () => {
      const order = await (await onNewConnection(`${url}/orders/${id}`))
        .json();
      return order.status === "cancelled" ? true : undefined;
    }, 1000);
  }
}

function metricValue(text: string, name: string): number {
  const line = text.split("\n").find((row) =>
    row.startsWith(`${name} `) || row.startsWith(`${name}{`)
  );
  assert.ok(line, `no ${name} in /metrics`);
  return Number(line.split(" ").at(-1));
}

Deno.test({
  name:
    "PARALLEL=2 on PostgreSQL: two isolates on one port, every order readable from any connection, /metrics sums them, one summary at SIGTERM",
  // Stated reasons: no PostgreSQL server reachable here; or the second pass.
  ignore: !available || secondPass,
  async fn() {
    const { schema, drop } = freshSchema("parallel");
    try {
      const service = await startService({
        STORE: TEST_DATABASE_URL,
        PG_SCHEMA: schema,
        PARALLEL: "2",
        LATENCY_SCALE: "0",
        INSTANCE_ID: "par",
        LEASE_MS: "1000",
      });
      const listening = service.records.filter((record) =>
        record.message === "Listening"
      );
      assert.equal(listening.length, 1, "one Listening record for the process");
      assert.equal(listening[0]!.isolates, 2);

      const ids: string[] = [];
      for (let index = 0; index < 40; index++) {
        const response = await postOnNewConnection(service.url);
        assert.equal(response.status, 201);
        ids.push((await response.json()).id);
      }
      // Each order, read on a fresh connection, whichever isolate took it.
      for (const id of ids) {
        await waitForCompleted(service.url, id);
      }

      // Each isolate is an instance: one dashboard row each, with what it
      // finished as of its last heartbeat (every fifth of LEASE_MS).
      let rows: Array<
        { id: string; status: { finished?: { completed: number } } | null }
      > = [];
      const deadline = Date.now() + 10_000;
      while (true) {
        const summary = await (await onNewConnection(
          `${service.url}/dashboard/api/summary`,
        )).json();
        rows = summary.instances;
        const completed = rows.map((row) =>
          row.status?.finished?.completed ?? 0
        );
        if (completed.reduce((sum, count) => sum + count, 0) === 40) break;
        if (Date.now() > deadline) {
          throw new Error(`rows never added up: ${JSON.stringify(rows)}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      assert.deepEqual(rows.map((row) => row.id).sort(), ["par-1", "par-2"]);
      assert.ok(
        rows.every((row) => (row.status?.finished?.completed ?? 0) > 0),
        `both isolates took orders: ${JSON.stringify(rows)}`,
      );

      const metrics = await (await onNewConnection(`${service.url}/metrics`))
        .text();
      assert.equal(metricValue(metrics, "orders_created_total"), 40);
      assert.equal(metricValue(metrics, "workers_configured"), 10);
      assert.equal(
        (await onNewConnection(`${service.url}/ready`)).status,
        200,
      );

      service.kill("SIGTERM");
      assert.equal((await service.status).code, 0);
      const summaries = service.records.filter((record) =>
        record.message === "Shutdown complete"
      );
      assert.equal(summaries.length, 1, "one summary for the process");
      assert.equal(summaries[0]!.accepted, 40);
      assert.equal(summaries[0]!.completed, 40);
      assert.equal(summaries[0]!.abandoned, 0);
    } finally {
      await drop();
    }
  },
});

async function waitForCompleted(url: string, id: string): Promise<void> {
  await waitFor(`${id} completed`, async () => {
    const response = await onNewConnection(`${url}/orders/${id}`);
    assert.equal(response.status, 200, id);
    return (await response.json()).status === "completed" ? true : undefined;
  }, 10_000);
}

parallelTest(
  "PARALLEL=2 on the memory store: a shard per isolate, orders found from any connection, one order per key, every order listed once, /events whole and resumable, one summary",
  async () => {
    const service = await startService({
      PARALLEL: "2",
      LATENCY_SCALE: "0",
    });
    const url = service.url;
    // A stream of every change, opened before anything happens.
    const streams = new AbortController();
    const stream = collectEvents(`${url}/events`, streams.signal);
    let replay: ReturnType<typeof collectEvents> | undefined;
    try {
      await stream.opened;
      const ids: string[] = [];
      for (let index = 0; index < 40; index++) {
        const response = await postOnNewConnection(url);
        assert.equal(response.status, 201);
        ids.push((await response.json()).id);
      }
      const shards = new Set(ids.map((id) => id[14]));
      assert.equal(
        shards.size,
        2,
        `orders made in both shards: ${[...shards]}`,
      );
      for (const id of ids) await waitForCompleted(url, id);

      // 20 keys, 10 concurrent requests each, every one on its own connection.
      const byKey = await oneOrderPerKey(url, 20, 10);
      const all = [...ids, ...[...byKey.values()].map((made) => [...made][0]!)];
      for (const id of all) await waitForCompleted(url, id);

      // Every order exactly once, in id order, over small pages.
      const listed: string[] = [];
      let next: string | undefined = `${url}/orders?limit=7`;
      while (next !== undefined) {
        const page: Response = await onNewConnection(next);
        listed.push(
          ...(await page.json()).map((order: { id: string }) => order.id),
        );
        const link = page.headers.get("link");
        next = link
          ? `${url}${/<([^>]+)>; rel="next"/.exec(link)![1]}`
          : undefined;
      }
      assert.deepEqual(listed, [...all].sort());

      // /events saw every change of every order, from both isolates: each
      // order is created, started, three steps, completed.
      const seen = await waitFor(
        "every change on /events",
        () => stream.events.length >= 60 * 6 ? [...stream.events] : undefined,
        10_000,
      );
      const created = seen.filter((event) => event.event === "created");
      assert.equal(created.length, 60);
      const numbers = seen.map((event) => Number(event.id));
      assert.deepEqual(numbers, numbers.map((_, index) => numbers[0]! + index));
      // Reconnecting with the id of an event in the middle replays the rest.
      const middle = numbers[100]!;
      const resumed = collectEvents(`${url}/events`, streams.signal, {
        "last-event-id": String(middle),
      });
      replay = resumed;
      const replayed = await waitFor(
        "the replay after the middle event",
        () =>
          resumed.events.length >= numbers.length - 101
            ? resumed.events
            : undefined,
        10_000,
      );
      assert.equal(Number(replayed[0]!.id), middle + 1);

      const metrics = await (await onNewConnection(`${url}/metrics`)).text();
      assert.equal(metricValue(metrics, "orders_created_total"), 60);

      const summary =
        await (await onNewConnection(`${url}/dashboard/api/summary`))
          .json();
      assert.deepEqual(
        summary.instances.map((row: { id: string }) => row.id),
        ["isolate-1", "isolate-2"],
      );
      assert.equal(summary.counts.completed, 60);
    } finally {
      streams.abort();
      await Promise.all([stream.done, replay?.done]).catch(() => {});
      service.kill("SIGTERM");
    }
    assert.equal((await service.status).code, 0);
    const summaries = service.records.filter((record) =>
      record.message === "Shutdown complete"
    );
    assert.equal(summaries.length, 1);
    assert.equal(summaries[0]!.accepted, 60);
    assert.equal(summaries[0]!.completed, 60);
  },
);

parallelTest(
  "PARALLEL=2 on the memory store: a cancel sent on any connection stops the order's running step at once, in whichever isolate runs it",
  async () => {
    // Steps of 2 to 4 s: an order that ends cancelled within a second of its
    // cancel had its running step aborted, not waited for.
    const service = await startService({ PARALLEL: "2", LATENCY_SCALE: "2" });
    try {
      const ids: string[] = [];
      for (let index = 0; index < 6; index++) {
        const response = await postOnNewConnection(service.url);
        ids.push((await response.json()).id);
      }
      assert.equal(new Set(ids.map((id) => id[14])).size, 2, "both shards");
      await new Promise((resolve) => setTimeout(resolve, 300));
      await cancelEachWithinASecond(service.url, ids, [202]);
    } finally {
      service.kill("SIGTERM");
    }
    assert.equal((await service.status).code, 0);
  },
);

parallelTest(
  "PARALLEL=2 on a SQLite file: every isolate reads the one file, one order per key whichever isolate a retry reaches, a cancel on any connection reaches the isolate working the order",
  async () => {
    const directory = await Deno.makeTempDir();
    const service = await startService({
      STORE: `sqlite:${directory}/orders.db`,
      PARALLEL: "2",
      LATENCY_SCALE: "2",
    });
    try {
      // 10 keys, 10 concurrent requests each, every one on its own connection:
      // no hop, the file's write transaction makes the second find the first.
      const byKey = await oneOrderPerKey(service.url, 10, 10);
      // Unkeyed, one connection each: both isolates make some. The kernel
      // spreads connections by a hash, so 8 could all land on one (it
      // happened once in CI); 8 at least, and on until both have, up to 40.
      const ids: string[] = [];
      const marks = () => new Set(ids.map((id) => id[14])).size;
      while (ids.length < 8 || (marks() < 2 && ids.length < 40)) {
        const response = await postOnNewConnection(service.url);
        ids.push((await response.json()).id);
      }
      assert.equal(
        new Set(ids.map((id) => id[14])).size,
        2,
        "both isolates made orders",
      );
      ids.push(...[...byKey.values()].map((made) => [...made][0]!));
      for (const id of ids) {
        const read = await onNewConnection(`${service.url}/orders/${id}`);
        assert.equal(read.status, 200, id);
      }
      // Steps of 2 to 4 s: cancelled within a second means the running step
      // was aborted in the isolate that works the order.
      // 200: cancelled while still queued; 202: asked of the running step.
      await cancelEachWithinASecond(service.url, ids, [200, 202]);
    } finally {
      service.kill("SIGTERM");
    }
    assert.equal((await service.status).code, 0);
    await Deno.remove(directory, { recursive: true });
  },
);

for (const [before, after] of [["2", "1"], ["1", "2"]] as const) {
  parallelTest(
    `SQLite: orders a PARALLEL=${before} process left mid-processing when killed are recovered and finished at PARALLEL=${after}`,
    async () => {
      const directory = await Deno.makeTempDir();
      const store = `sqlite:${directory}/orders.db`;
      // Steps of 2 to 4 s: every order is still pending or processing when
      // the process is killed.
      const first = await startService({
        STORE: store,
        PARALLEL: before,
        LATENCY_SCALE: "2",
      });
      const ids: string[] = [];
      try {
        for (let index = 0; index < 24; index++) {
          const response = await postOnNewConnection(first.url);
          assert.equal(response.status, 201);
          ids.push((await response.json()).id);
        }
        await waitFor("orders processing", async () => {
          const page = await (await onNewConnection(
            `${first.url}/orders?status=processing&limit=100`,
          )).json();
          return page.length >= Number(before) * 2 ? true : undefined;
        }, 5000);
      } finally {
        first.kill("SIGKILL");
      }
      await first.status;

      const second = await startService({
        STORE: store,
        PARALLEL: after,
        LATENCY_SCALE: "0",
      });
      try {
        const finished = await waitFor("every order completed", async () => {
          const page = await (await onNewConnection(
            `${second.url}/orders?limit=100`,
          )).json() as Array<
            { id: string; status: string; timeline: Array<{ type: string }> }
          >;
          return page.length === ids.length &&
              page.every((order) => order.status === "completed")
            ? page
            : undefined;
        }, 15_000);
        assert.deepEqual(finished.map((order) => order.id), [...ids].sort());
        const interrupted = finished.filter((order) =>
          order.timeline.some((entry) => entry.type === "interrupted")
        );
        assert.ok(
          interrupted.length >= Number(before) * 2,
          `interrupted orders recovered: ${interrupted.length}`,
        );
      } finally {
        second.kill("SIGTERM");
      }
      assert.equal((await second.status).code, 0);
      await Deno.remove(directory, { recursive: true });
    },
  );
}
