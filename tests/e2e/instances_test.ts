/**
 * Several real instances sharing one PostgreSQL database: one is killed in
 * the middle of processing and no order is lost or run twice; cancels,
 * idempotency keys and event streams work across instances; a rolling
 * restart hands queued orders over. CI starts PostgreSQL and requires
 * these tests.
 */

import assert from "node:assert/strict";
// @ts-types="npm:@types/pg@8.23.1"
import pg from "pg";
import { EXAMPLE_ORDER } from "../helpers.ts";
import { listAllOrders, postOrder, postOrdersUntil } from "./load.ts";
import {
  instanceIdsOf,
  type ServiceProcess,
  startService,
} from "./service_process.ts";
import { collectEvents, waitFor } from "./event_stream.ts";
import { TcpProxy } from "../tcp_proxy.ts";
import {
  adminQuery,
  freshSchema,
  postgresForTests,
  TEST_DATABASE_URL,
} from "../store/postgres_admin.ts";

const available = await postgresForTests();

/** Waits until every order of `ids` is completed, as `url` lists them. */
function waitForCompleted(
  what: string,
  url: string,
  ids: readonly string[],
  timeoutMs: number,
): Promise<true> {
  return waitFor(what, async () => {
    const orders = new Map(
      (await listAllOrders(url)).map((order) => [order.id, order]),
    );
    return ids.every((id) => orders.get(id)?.status === "completed")
      ? true
      : undefined;
  }, timeoutMs);
}

async function stop(service: ServiceProcess): Promise<Record<string, unknown>> {
  service.kill("SIGTERM");
  assert.equal((await service.status).code, 0, await service.stderr);
  return service.records.find((record) => record.event === "summary") ?? {};
}

const LEASE_MS = 1000;

/** What a test of several instances gets: see {@linkcode instancesTest}. */
interface Instances {
  /** Starts an instance on the test's schema, with `env` added. */
  start(env: Record<string, string>): Promise<ServiceProcess>;
  /** Aborted when the test ends: for its streams. */
  signal: AbortSignal;
  /** The test's schema. */
  schema: string;
}

/**
 * A test of instances on a schema of its own: whatever it started is
 * killed and the schema dropped when it ends, passed or failed.
 */
function instancesTest(
  name: string,
  body: (instances: Instances) => Promise<void>,
): void {
  Deno.test({
    name,
    ignore: !available, // stated reason: no PostgreSQL server reachable here
    async fn() {
      const { schema, drop } = freshSchema("e2e");
      const streams = new AbortController();
      const started: ServiceProcess[] = [];
      try {
        await body({
          signal: streams.signal,
          schema,
          start: async (env) => {
            const service = await startService({
              STORE: TEST_DATABASE_URL,
              PG_SCHEMA: schema,
              ...env,
            });
            started.push(service);
            return service;
          },
        });
      } finally {
        streams.abort();
        for (const service of started) {
          try {
            service.kill("SIGKILL");
          } catch { /* already exited */ }
          await service.status;
        }
        await drop();
      }
    },
  });
}

instancesTest(
  "three instances on one database, one SIGKILLed mid-processing: every 201 completes within the rescue bound, no step finishes twice, every instance lists each order once, and the survivors' streams saw every instance's events",
  async ({ start, signal, schema }) => {
    const env = {
      LATENCY_SCALE: "0.02",
      WORKERS: "20",
      QUEUE_CAPACITY: "200",
      LEASE_MS: String(LEASE_MS),
    };
    const instances: ServiceProcess[] = [];
    for (const name of ["a", "b", "c"]) {
      instances.push(await start({ ...env, INSTANCE_ID: name }));
    }
    const [a, b, c] = instances as [
      ServiceProcess,
      ServiceProcess,
      ServiceProcess,
    ];
    const seenOnC = collectEvents(`${c.url}/events`, signal);
    await seenOnC.opened;

    const stopLoad = Promise.withResolvers<void>();
    const loads = instances.map((instance) =>
      postOrdersUntil(instance.url, {
        concurrency: 4,
        stop: stopLoad.promise,
        maxMs: 20_000,
      })
    );
    // Wait until a itself is in the middle of processing, then kill it.
    // (Counting every instance's processing orders let a, with its work
    // done an instant before, die holding none: seen once in CI.)
    await waitFor("a processing", async () => {
      const [row] = await adminQuery<{ n: number }>(
        `SELECT count(*)::int AS n FROM "${schema}".orders
         WHERE status = 'processing' AND claimed_by = ANY($1)`,
        [instanceIdsOf("a")],
      );
      return row!.n >= 3 ? true : undefined;
    }, 10_000);
    a.kill("SIGKILL");
    const killedAt = Date.now();
    await a.status;
    await new Promise((resolve) => setTimeout(resolve, 300));
    stopLoad.resolve();
    const results = await Promise.all(loads);
    const created = results.flatMap((result) => result.created);
    for (const [index, result] of results.entries()) {
      const unexpected = [...result.statuses].filter(([status]) =>
        status !== 201 && status !== 503 && !(index === 0)
      );
      assert.deepEqual(
        unexpected,
        [],
        "only 201 and 503 answers from survivors",
      );
    }
    assert.ok(
      results[0]!.created.length > 0,
      "a acknowledged orders before it died",
    );

    // Every acknowledged order completes, a's too, within the bound.
    await waitForCompleted("every 201 completed", b.url, created, 30_000);
    const rescueMs = Date.now() - killedAt;
    console.log(
      `all of a's orders completed ${rescueMs} ms after its SIGKILL`,
    );
    // The lease, one heartbeat period to notice, then the work itself
    // (the backlog a held at 20 workers, ~60 ms per order) and slack for
    // a loaded machine.
    assert.ok(rescueMs < LEASE_MS + LEASE_MS / 5 + 8000, `${rescueMs} ms`);

    // No step finished twice; a's interrupted orders say so.
    let interrupted = 0;
    for (const id of created) {
      const order = await (await fetch(`${c.url}/orders/${id}`)).json();
      const steps = order.timeline
        .filter((entry: { type: string }) => entry.type === "step_finished")
        .map((entry: { step: string }) => entry.step);
      assert.equal(new Set(steps).size, steps.length, `${id}: ${steps}`);
      assert.equal(steps.length, 3, id);
      if (
        order.timeline.some((e: { type: string }) => e.type === "interrupted")
      ) {
        interrupted++;
      }
    }
    assert.ok(interrupted > 0, "some order was interrupted by the kill");

    // Each instance lists each order exactly once, paging.
    for (const instance of [b, c]) {
      const ids = (await listAllOrders(instance.url)).map((order) => order.id);
      assert.equal(new Set(ids).size, ids.length, "no order listed twice");
      const listed = new Set(ids);
      assert.ok(created.every((id) => listed.has(id)), "no order missing");
    }

    // c's stream carried the changes made on a and on b.
    const createdOn = (result: { created: string[] }) =>
      new Set(result.created);
    const streamed = new Set(
      seenOnC.events.filter((event) => event.event === "created").map((
        event,
      ) => JSON.parse(event.data).id),
    );
    for (const index of [0, 1]) {
      const mine = [...createdOn(results[index]!)];
      assert.ok(
        mine.every((id) => streamed.has(id)),
        `every order created on ${"ab"[index]} was streamed by c`,
      );
    }
    const ids = seenOnC.events.map((event) => event.id);
    assert.equal(new Set(ids).size, ids.length, "event ids are unique");

    const summaries = [await stop(b), await stop(c)];
    assert.ok(
      summaries.some((summary) => (summary.recovered as number) > 0),
      "a survivor took over a's orders",
    );
  },
);

instancesTest(
  "across two instances: a cancel on b stops an order running on a, b's stream follows an order accepted on a, and one idempotency key sent to both creates one order",
  async ({ start, signal }) => {
    const env = {
      LATENCY_SCALE: "1", // steps of 0.5–2 s: time to cancel mid-step
    };
    const instances: ServiceProcess[] = [];
    instances.push(await start({ ...env, INSTANCE_ID: "a" }));
    instances.push(await start({ ...env, INSTANCE_ID: "b" }));
    const [a, b] = instances as [ServiceProcess, ServiceProcess];

    const response = await postOrder(a.url);
    assert.equal(response.status, 201);
    const { id } = await response.json();
    const followed = collectEvents(
      `${b.url}/orders/${id}/events`,
      signal,
    );
    await followed.opened;
    await waitFor("processing on a", async () => {
      const order = await (await fetch(`${b.url}/orders/${id}`)).json();
      return order.status === "processing" ? true : undefined;
    }, 5000);
    const cancelledAt = Date.now();
    const cancel = await fetch(`${b.url}/orders/${id}/cancel`, {
      method: "POST",
    });
    assert.equal(cancel.status, 202, await cancel.text());
    const final = await waitFor("cancelled", async () => {
      const order = await (await fetch(`${a.url}/orders/${id}`)).json();
      return order.status === "cancelled" ? order : undefined;
    }, 5000);
    // Aborted mid-step: well before the 1–2 s step would have ended.
    const tookMs = Date.now() - cancelledAt;
    assert.ok(tookMs < 900, `cancelled after ${tookMs} ms`);
    assert.equal(
      final.timeline.filter((e: { type: string }) => e.type === "step_finished")
        .length,
      0,
    );
    await followed.done;
    const names = followed.events.map((event) => event.event);
    assert.equal(names[0], "order");
    assert.ok(names.includes("cancel_requested"), names.join());
    assert.equal(names.at(-1), "status");
    assert.equal(
      JSON.parse(followed.events.at(-1)!.data).status,
      "cancelled",
    );

    const answers = await Promise.all(
      Array.from(
        { length: 6 },
        (_, index) =>
          fetch(`${[a, b][index % 2]!.url}/orders`, {
            method: "POST",
            headers: {
              "content-type": "application/json",
              "idempotency-key": "one-key-two-instances",
              prefer: "return=minimal",
            },
            body: JSON.stringify(EXAMPLE_ORDER),
          }).then(async (r) => ({
            status: r.status,
            location: r.headers.get("location"),
            body: await r.text(),
          })),
      ),
    );
    assert.deepEqual(
      answers.map((answer) => answer.status).sort(),
      [200, 200, 200, 200, 200, 201],
      JSON.stringify(answers),
    );
    assert.equal(new Set(answers.map((answer) => answer.location)).size, 1);
    await stop(a);
    await stop(b);
  },
);

instancesTest(
  "a rolling restart: the instance stopped with SIGTERM finishes its running steps and hands its queued orders back, and the other completes them at once",
  async ({ start }) => {
    const env = {
      LATENCY_SCALE: "0.1",
      LEASE_MS: "60000", // a rescue cannot be what moves them
    };
    const instances: ServiceProcess[] = [];
    instances.push(
      await start({ ...env, INSTANCE_ID: "a", WORKERS: "1" }),
    );
    instances.push(await start({ ...env, INSTANCE_ID: "b" }));
    const [a, b] = instances as [ServiceProcess, ServiceProcess];
    const ids: string[] = [];
    for (let index = 0; index < 10; index++) {
      const response = await postOrder(a.url);
      assert.equal(response.status, 201);
      ids.push((await response.json()).id);
    }
    const stoppedAt = Date.now();
    const summary = await stop(a);
    assert.ok((summary.handed_back as number) >= 8, JSON.stringify(summary));
    assert.equal(summary.abandoned, 0);
    await waitForCompleted("all completed on b", b.url, ids, 15_000);
    const tookMs = Date.now() - stoppedAt;
    // 10 orders of ~250 ms on b's 5 workers; far below the 60 s lease.
    assert.ok(tookMs < 10_000, `${tookMs} ms`);
    const summaryB = await stop(b);
    assert.ok((summaryB.recovered as number) >= 8, JSON.stringify(summaryB));
  },
);

instancesTest(
  "the dashboard summary on PostgreSQL lists every live instance with its queue and workers, and counts the whole cluster's orders",
  async ({ start }) => {
    const env = {
      LATENCY_SCALE: "0",
      LEASE_MS: "1000",
    };
    const instances: ServiceProcess[] = [];
    instances.push(
      await start({ ...env, INSTANCE_ID: "a", WORKERS: "3" }),
    );
    instances.push(
      await start({ ...env, INSTANCE_ID: "b", WORKERS: "4" }),
    );
    const [a, b] = instances as [ServiceProcess, ServiceProcess];
    for (let index = 0; index < 6; index++) {
      assert.equal((await postOrder([a, b][index % 2]!.url)).status, 201);
    }
    const summary = await waitFor(
      "both instances and 6 completed",
      async () => {
        const body = await (await fetch(`${a.url}/dashboard/api/summary`))
          .json();
        // One row per instance: a process's isolates are instances each.
        return body.counts.completed === 6 &&
            body.instances.length === 2 * instanceIdsOf("a").length &&
            body.instances.every((i: { status: unknown }) => i.status)
          ? body
          : undefined;
      },
      10_000,
    );
    assert.equal(summary.store, "postgres");
    const byId = new Map(
      summary.instances.map((i: { id: string }) => [i.id, i]),
    );
    // The isolate of a that answered says it is itself.
    assert.equal(
      instanceIdsOf("a").filter((id) =>
        (byId.get(id) as { self: boolean }).self
      ).length,
      1,
    );
    for (const id of instanceIdsOf("b")) {
      assert.equal(
        (byId.get(id) as { status: { workers_total: number } }).status
          .workers_total,
        4,
      );
    }
    const sum = (values: number[]) => values.reduce((x, y) => x + y, 0);
    assert.equal(sum(summary.throughput.created), 6, "b's orders too");
    // Each instance says what it finished itself; together, all six.
    const finishedHere = await waitFor(
      "both heartbeats count 6",
      async () => {
        const body = await (await fetch(`${b.url}/dashboard/api/summary`))
          .json();
        const total = sum(
          body.instances.map((
            i: { status: { finished?: { completed: number } } },
          ) => i.status?.finished?.completed ?? 0),
        );
        return total === 6 ? total : undefined;
      },
      5000,
    );
    assert.equal(finishedHere, 6);
    await stop(a);
    await stop(b);
  },
);

instancesTest(
  "on PostgreSQL, /events resumes from the events table a Last-Event-ID older than the 1,000 events an instance keeps in memory",
  async ({ start, signal }) => {
    const env = {
      LATENCY_SCALE: "0",
      QUEUE_CAPACITY: "10000",
    };
    const service = await start({ ...env, INSTANCE_ID: "a" });
    const seen = collectEvents(`${service.url}/events`, signal);
    await seen.opened;
    // 300 orders of 5 events each: the first event falls out of memory.
    const results = await Promise.all(
      Array.from({ length: 4 }, () =>
        (async () => {
          for (let index = 0; index < 75; index++) {
            assert.equal((await postOrder(service.url)).status, 201);
          }
        })()),
    );
    assert.equal(results.length, 4);
    await waitFor(
      "1,500 events",
      () => seen.events.length >= 1500 ? true : undefined,
      20_000,
    );
    const first = seen.events[0]!.id!;
    // A reconnect that saw only the first event.
    const replay = await fetch(`${service.url}/events`, {
      headers: { "last-event-id": first },
      // Without the replay no more events come: fail, do not hang.
      signal: AbortSignal.any([signal, AbortSignal.timeout(15_000)]),
    });
    assert.equal(replay.status, 200);
    const reader = replay.body!.pipeThrough(new TextDecoderStream())
      .getReader();
    let text = "";
    while ((text.match(/\nid: /g) ?? []).length < 1499) {
      const { value, done } = await reader.read();
      if (done) break;
      text += value;
    }
    await reader.cancel();
    assert.doesNotMatch(text, /event: reset/);
    const ids = [...text.matchAll(/\nid: (\d+)/g)].map((m) => m[1]);
    assert.deepEqual(
      ids.slice(0, 1499),
      seen.events.slice(1, 1500).map((event) => event.id),
      "every event after it, in the same order",
    );
    await stop(service);
  },
);

/**
 * Runs `body` with a fault-injecting proxy in front of the test database,
 * and the database's URL through it; the proxy is closed when it ends.
 */
async function withDatabaseProxy(
  body: (proxy: TcpProxy, proxiedUrl: string) => Promise<void>,
): Promise<void> {
  const url = new URL(TEST_DATABASE_URL);
  const proxy = new TcpProxy({
    hostname: url.hostname,
    port: Number(url.port || 5432),
  });
  url.port = String(proxy.port);
  try {
    await body(proxy, url.href);
  } finally {
    await proxy.close();
  }
}

/**
 * Starts instance a on the database and instance b through the proxy at
 * `proxiedUrl`, both with `env`.
 */
async function startBehindProxy(
  start: Instances["start"],
  proxiedUrl: string,
  env: Record<string, string>,
): Promise<{ a: ServiceProcess; b: ServiceProcess }> {
  const a = await start({ ...env, INSTANCE_ID: "a" });
  const b = await start({ ...env, INSTANCE_ID: "b", STORE: proxiedUrl });
  return { a, b };
}

// Rounds of the partition below. The stranding it guards against was
// reported about one time in four per partition; a bug that shows with
// probability 1/4 in each round goes unseen in 11 rounds with chance
// (3/4)^11 < 5%. The bad order itself (an insert answered before the
// heartbeat that finds the registration gone) depends on where each
// connection was cut, so the store test of the same rule
// (postgres_instances_test.ts) forces it every time; this one checks the
// whole service under a real partition.
const PARTITION_ROUNDS = 11;

instancesTest(
  "an instance cut off from PostgreSQL past its lease while it takes keyed POSTs: every 201 completes once the cut heals, in each of 11 partitions",
  async ({ start }) => {
    await withDatabaseProxy(async (proxy, proxiedUrl) => {
      const env = { LATENCY_SCALE: "0", LEASE_MS: "500" };
      const { a, b } = await startBehindProxy(start, proxiedUrl, env);
      for (let round = 0; round < PARTITION_ROUNDS; round++) {
        proxy.blackHole();
        const answers = Promise.all(
          Array.from({ length: 20 }, (_, index) =>
            fetch(`${b.url}/orders`, {
              method: "POST",
              headers: {
                "content-type": "application/json",
                "idempotency-key": `partition-${round}-${index}`,
              },
              body: JSON.stringify(EXAMPLE_ORDER),
            }).then(async (response) => ({
              status: response.status,
              body: await response.json(),
            }))),
        );
        // Three leases: a presumes b dead and rescues what it saw b hold.
        await new Promise((resolve) => setTimeout(resolve, 1500));
        proxy.resume();
        const created = (await answers).filter((answer) =>
          answer.status === 201
        ).map((answer) => answer.body.id as string);
        assert.ok(created.length > 0, `round ${round}: some POST got 201`);
        await waitForCompleted(
          `round ${round}: ${created.length} acknowledged orders completed`,
          a.url,
          created,
          15_000,
        );
      }
      await stop(b);
      await stop(a);
    });
  },
);

instancesTest(
  "an instance cut off from PostgreSQL (black-holed, not closed) does not hold up the rescue of a SIGKILLed instance's orders",
  async ({ start }) => {
    await withDatabaseProxy(async (proxy, proxiedUrl) => {
      const env = { LATENCY_SCALE: "0", LEASE_MS: "500" };
      const { a, b } = await startBehindProxy(start, proxiedUrl, env);
      // c holds orders it will never finish: one worker, slow steps.
      const c = await start({
        ...env,
        INSTANCE_ID: "c",
        WORKERS: "1",
        LATENCY_SCALE: "5",
      });
      const held: string[] = [];
      for (let index = 0; index < 10; index++) {
        const response = await postOrder(c.url);
        assert.equal(response.status, 201);
        held.push((await response.json()).id);
      }
      // b is cut off mid-way through whatever it was doing, rescue included.
      proxy.blackHole();
      c.kill("SIGKILL");
      await c.status;
      await waitForCompleted(
        "c's orders completed by a while b is cut off",
        a.url,
        held,
        10_000,
      );
      proxy.resume();
      await stop(b);
      await stop(a);
    });
  },
);

instancesTest(
  "/ready turns 503 while an instance cannot renew its lease (black-holed from PostgreSQL), and 200 again once the cut heals",
  async ({ start }) => {
    await withDatabaseProxy(async (proxy, proxiedUrl) => {
      const b = await start({
        LATENCY_SCALE: "0",
        LEASE_MS: "1000",
        INSTANCE_ID: "b",
        STORE: proxiedUrl,
      });
      const ready = async () => {
        const response = await fetch(`${b.url}/ready`);
        return { status: response.status, body: await response.json() };
      };
      assert.equal((await ready()).status, 200);
      proxy.blackHole();
      const refused = await waitFor("/ready 503", async () => {
        const answer = await ready();
        return answer.status === 503 ? answer : undefined;
      }, 5000);
      assert.match(refused.body.detail, /lease/);
      proxy.resume();
      await waitFor("/ready 200", async () => {
        return (await ready()).status === 200 ? true : undefined;
      }, 10_000);
      await stop(b);
    });
  },
);

instancesTest(
  "a table lock held past the lease (LOCK TABLE orders) does not get a live instance presumed dead, nor its running orders rescued",
  async ({ start, schema }) => {
    const env = { LATENCY_SCALE: "0.5", LEASE_MS: "1000" };
    const a = await start({ ...env, INSTANCE_ID: "a" });
    const b = await start({ ...env, INSTANCE_ID: "b" });
    const ids: string[] = [];
    for (let index = 0; index < 6; index++) {
      const response = await postOrder((index % 2 ? a : b).url);
      assert.equal(response.status, 201);
      ids.push((await response.json()).id);
    }
    const holder = new pg.Client({ connectionString: TEST_DATABASE_URL });
    holder.on("error", () => {});
    await holder.connect();
    try {
      await holder.query("BEGIN");
      await holder.query(`LOCK TABLE "${schema}".orders`);
      await new Promise((resolve) => setTimeout(resolve, 3000));
      await holder.query("COMMIT");
    } finally {
      await holder.end().catch(() => {});
    }
    await waitForCompleted("every order completed", a.url, ids, 30_000);
    const orders = await listAllOrders(a.url);
    for (const order of orders) {
      assert.ok(
        !order.timeline.some((entry) => entry.type === "interrupted"),
        `order ${order.id} was rescued from a live instance`,
      );
    }
    for (const service of [a, b]) {
      assert.ok(
        !service.records.some((record) =>
          String(record.message).includes("presumed dead")
        ),
      );
    }
    await stop(b);
    await stop(a);
  },
);
