/**
 * The service's promises, each checked end to end on the real process,
 * real sockets and a free port. docs/design.md "Guarantees" points here.
 */

import assert from "node:assert/strict";
import { listAllOrders, postOrdersUntil, waitUntilSettled } from "./load.ts";
import { startService } from "./service_process.ts";
import { DatabaseSync } from "node:sqlite";
import {
  adminQuery,
  freshSchema,
  postgresForTests,
  TEST_DATABASE_URL,
} from "../store/postgres_admin.ts";

const TERMINAL = new Set(["completed", "failed", "cancelled"]);

function summaryOf(
  records: Array<Record<string, unknown>>,
): Record<string, number> {
  const last = records.at(-1) as Record<string, number> | undefined;
  assert.equal(
    last?.event as unknown,
    "summary",
    "the summary is the last log record",
  );
  return last!;
}

/** A store for a test: its settings, and what it kept once the service stopped. */
interface StorePlace {
  env: Record<string, string>;
  /** Every order's status, read from the store itself; absent for memory. */
  statuses?: () => Promise<Map<string, string>>;
  close(): Promise<void>;
}

const pgAvailable = await postgresForTests();

/** The stores the drain is tested on; PostgreSQL where a server is reachable. */
const STORES: Array<
  { name: string; ignore: boolean; open(): Promise<StorePlace> }
> = [
  {
    name: "memory",
    ignore: false,
    open: () => Promise.resolve({ env: {}, close: () => Promise.resolve() }),
  },
  {
    name: "SQLite",
    ignore: false,
    open: async () => {
      const directory = await Deno.makeTempDir();
      const path = `${directory}/orders.db`;
      return {
        env: { STORE: `sqlite:${path}` },
        statuses: () => {
          const db = new DatabaseSync(path, { readOnly: true });
          try {
            const rows = db.prepare("SELECT id, status FROM orders")
              .all() as Array<{ id: string; status: string }>;
            return Promise.resolve(
              new Map(rows.map((row) => [row.id, row.status])),
            );
          } finally {
            db.close();
          }
        },
        close: () => Deno.remove(directory, { recursive: true }),
      };
    },
  },
  {
    name: "PostgreSQL",
    ignore: !pgAvailable,
    open: () => {
      const { schema, drop } = freshSchema("e2e");
      return Promise.resolve({
        env: { STORE: TEST_DATABASE_URL, PG_SCHEMA: schema },
        statuses: async () =>
          new Map(
            (await adminQuery<{ id: string; status: string }>(
              `SELECT id, status FROM "${schema}".orders`,
            )).map((row) => [row.id, row.status]),
          ),
        close: async () => {
          await drop();
        },
      });
    },
  },
];

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

Deno.test("promise 1: under load every 201 is an order that finishes, every 503 created nothing, and the summary matches", async () => {
  const service = await startService({
    LATENCY_SCALE: "0.002",
    WORKERS: "5",
    QUEUE_CAPACITY: "20", // small, so that some requests meet a full queue
  });
  const load = await postOrdersUntil(service.url, {
    concurrency: 32,
    stop: sleep(2000),
    maxMs: 10_000,
  });
  assert.equal(load.timeouts, 0, "no request hung");
  assert.ok(
    (load.statuses.get(503) ?? 0) > 0,
    "the queue must have filled at least once",
  );
  assert.deepEqual([...load.statuses.keys()].sort(), [201, 503]);

  await waitUntilSettled(service.url);
  const listed = await listAllOrders(service.url);
  assert.deepEqual(
    listed.map((order) => order.id).sort(),
    [...load.created].sort(),
    "exactly the 201s exist",
  );
  for (const order of listed) {
    assert.ok(TERMINAL.has(order.status), `${order.id} is ${order.status}`);
  }

  service.kill("SIGTERM");
  assert.equal((await service.status).code, 0);
  const summary = summaryOf(service.records);
  assert.equal(summary.accepted, load.created.length);
  assert.equal(
    summary.completed! + summary.failed! + summary.cancelled!,
    summary.accepted,
  );
  assert.equal(summary.abandoned, 0);
});

// On every store: what a drain finishes must be in the store, finished, for
// one that keeps it. In CI's second pass, with two isolates (TEST_PARALLEL).
for (const store of STORES) {
  Deno.test({
    name:
      `promise 2: SIGTERM during load — no hang, every acknowledged order finishes, exit 0, summary matches the clients (${store.name})`,
    ignore: store.ignore, // stated reason: no PostgreSQL server reachable here
    async fn() {
      const place = await store.open();
      try {
        const service = await startService({
          LATENCY_SCALE: "0.01",
          WORKERS: "10",
          QUEUE_CAPACITY: "200",
          SHUTDOWN_TIMEOUT_MS: "30000",
          ...place.env,
        });
        const signalled = sleep(1000).then(() => service.kill("SIGTERM"));
        const load = await postOrdersUntil(service.url, {
          concurrency: 16,
          stop: service.status,
          maxMs: 20_000,
        });
        await signalled;
        const status = await service.status;
        assert.equal(status.code, 0);
        assert.equal(load.timeouts, 0, "a request during the drain hung");
        for (const code of load.statuses.keys()) {
          assert.ok(code === 201 || code === 503, `answered ${code}`);
        }
        assert.ok(
          (load.statuses.get(503) ?? 0) + load.connectionErrors > 0,
          "requests after the signal were refused",
        );
        const summary = summaryOf(service.records);
        assert.equal(
          summary.accepted,
          load.created.length,
          "the summary counts what the clients were told",
        );
        assert.equal(summary.abandoned, 0);
        // A shared store's drain hands back what it had not started, for
        // the other instances (or the next start) to finish.
        assert.equal(
          summary.completed! + summary.handed_back!,
          summary.accepted,
        );
        assert.ok(summary.drained! > 0);
        if (place.statuses) {
          // Nothing acknowledged is lost: the next start finishes what was
          // handed back, and the store holds every 201, completed, and
          // nothing else.
          if (summary.handed_back! > 0) {
            const next = await startService({
              LATENCY_SCALE: "0",
              ...place.env,
            });
            await waitUntilSettled(next.url, 15_000);
            next.kill("SIGTERM");
            assert.equal((await next.status).code, 0);
          }
          const kept = await place.statuses();
          assert.deepEqual([...kept.keys()].sort(), [...load.created].sort());
          for (const [id, status] of kept) {
            assert.equal(status, "completed", id);
          }
        }
      } finally {
        await place.close();
      }
    },
  });
}

Deno.test("promise 2b: with a short SHUTDOWN_TIMEOUT_MS the drain gives up in time and counts exactly what it left", async () => {
  const service = await startService({
    LATENCY_SCALE: "0.5", // about 1.25 s per order
    WORKERS: "4",
    QUEUE_CAPACITY: "100",
    SHUTDOWN_TIMEOUT_MS: "300",
  });
  const load = await postOrdersUntil(service.url, {
    concurrency: 4,
    stop: sleep(300),
    maxMs: 5000,
  });
  const startedAt = Date.now();
  service.kill("SIGTERM");
  assert.equal((await service.status).code, 0);
  assert.ok(Date.now() - startedAt < 5000, "exit is bounded by the timeout");
  const summary = summaryOf(service.records);
  assert.equal(summary.accepted, load.created.length);
  assert.ok(summary.abandoned! > 0);
  assert.equal(
    summary.abandoned,
    summary.accepted! - summary.completed! - summary.failed! -
      summary.cancelled!,
  );
});

Deno.test("promise 3: garbage on the socket gets a 4xx or a closed connection, and the service stays healthy", async () => {
  const service = await startService({ LATENCY_SCALE: "0" });
  const garbage = [
    "\x00\x01\x02\xff\xfe\r\n\r\n",
    "GET /orders HTTP/9.9\r\n\r\n",
    "POST /orders HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
    "POST /orders HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "POST /orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\n",
    "GET /" + "a".repeat(100_000) + " HTTP/1.1\r\nHost: x\r\n\r\n",
    "GET /orders HTTP/1.1\r\n" + "X-Big: " + "b".repeat(100_000) + "\r\n\r\n",
  ];
  for (const payload of garbage) {
    const connection = await Deno.connect({
      hostname: "127.0.0.1",
      port: service.port,
    });
    await connection.write(new TextEncoder().encode(payload)).catch(() => {});
    const buffer = new Uint8Array(4096);
    const read = await connection.read(buffer).catch(() => null);
    if (read) {
      const head = new TextDecoder().decode(buffer.subarray(0, read));
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]);
      assert.ok(status >= 400 && status < 500, `answered ${head.slice(0, 40)}`);
      // Deno's HTTP server answers what it cannot parse before our code
      // runs: an empty 400 that closes the connection, not problem+json
      // (documented in docs/api.md; Deno.serve offers no hook for it).
      if (status === 400) {
        assert.match(head, /content-length: 0\r\n/i);
        assert.match(head, /connection: close\r\n/i);
      }
    }
    connection.close();
  }
  const health = await fetch(`${service.url}/health`);
  assert.equal(health.status, 200);
  await health.body?.cancel();
  assert.equal((await listAllOrders(service.url)).length, 0);
  service.kill("SIGTERM");
  assert.equal((await service.status).code, 0);
});

Deno.test(
  "promise 4: readers paging GET /orders while writers add orders never skip or repeat one",
  async () => {
    const service = await startService({
      LATENCY_SCALE: "0",
      QUEUE_CAPACITY: "100000",
    });
    const writersDone = sleep(800);
    const writing = postOrdersUntil(service.url, {
      concurrency: 8,
      stop: writersDone,
      maxMs: 5000,
    });
    const pages: string[][] = [];
    for (let reader = 0; reader < 3; reader++) {
      const seen: string[] = [];
      let next: string | undefined = "/orders?limit=7";
      await sleep(100);
      while (next) {
        const response: Response = await fetch(service.url + next);
        seen.push(
          ...(await response.json()).map((order: { id: string }) => order.id),
        );
        next = /<([^>]+)>; rel="next"/.exec(
          response.headers.get("link") ?? "",
        )
          ?.[1];
      }
      pages.push(seen);
    }
    await writing;
    const all = (await listAllOrders(service.url)).map((order) => order.id);
    for (const seen of pages) {
      assert.equal(new Set(seen).size, seen.length, "an order was repeated");
      assert.deepEqual(
        seen,
        all.slice(0, seen.length),
        "an order was skipped or out of order",
      );
    }
    service.kill("SIGTERM");
    await service.status;
  },
);

/** Opens a raw connection and sends `text`. */
async function rawConnection(port: number, text: string) {
  const connection = await Deno.connect({ hostname: "127.0.0.1", port });
  await connection.write(new TextEncoder().encode(text));
  return connection;
}

async function readHead(connection: Deno.Conn): Promise<string> {
  const buffer = new Uint8Array(4096);
  const read = await connection.read(buffer);
  return read ? new TextDecoder().decode(buffer.subarray(0, read)) : "";
}

Deno.test("promise 5: a trickled body times out with 408, and idle or stalled connections cannot starve the service", async () => {
  const service = await startService({
    LATENCY_SCALE: "0",
    BODY_TIMEOUT_MS: "300",
    MAX_INFLIGHT: "8",
    // One isolate in every pass: MAX_INFLIGHT is per isolate, and the
    // kernel may give the request that must be refused to an isolate whose
    // slots the stalled bodies (which it also spread) did not fill.
    PARALLEL: "1",
  });
  const head =
    "POST /orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 90\r\n\r\n";

  // A client trickling its body byte by byte is cut off at the deadline.
  const trickle = await rawConnection(service.port, head);
  const startedAt = Date.now();
  let answer = "";
  const reading = readHead(trickle).then((text) => answer = text);
  for (let byte = 0; byte < 20 && answer === ""; byte++) {
    await trickle.write(new TextEncoder().encode("{")).catch(() => {});
    await sleep(50);
  }
  await reading;
  assert.match(answer, /^HTTP\/1\.1 408/);
  assert.ok(Date.now() - startedAt < 3000);
  trickle.close();

  // 200 idle keep-alive connections and 8 stalled bodies hold no one else up.
  const idle = await Promise.all(
    Array.from(
      { length: 200 },
      () => Deno.connect({ hostname: "127.0.0.1", port: service.port }),
    ),
  );
  const stalled = await Promise.all(
    Array.from({ length: 8 }, () => rawConnection(service.port, head + "{")),
  );
  await sleep(50);
  // Past MAX_INFLIGHT, new work is refused at once rather than queued.
  const refused = await fetch(`${service.url}/orders?limit=1`);
  assert.equal(refused.status, 503);
  await refused.body?.cancel();
  const health = await fetch(`${service.url}/health`);
  assert.equal(health.status, 200);
  await health.body?.cancel();
  // Once the stalled bodies time out, the slots are free again.
  for (const connection of stalled) {
    assert.match(await readHead(connection), /^HTTP\/1\.1 408/);
    connection.close();
  }
  const listing = await fetch(`${service.url}/orders?limit=1`);
  assert.equal(listing.status, 200);
  await listing.body?.cancel();
  for (const connection of idle) connection.close();
  service.kill("SIGTERM");
  assert.equal((await service.status).code, 0);
});

Deno.test("promise 6: with FAILURE_RATE > 0 orders are retried, then failed with a reason; no worker dies; the numbers add up", async () => {
  const service = await startService({
    LATENCY_SCALE: "0.001",
    FAILURE_RATE: "0.3",
    MAX_ATTEMPTS: "2",
    WORKERS: "3",
    QUEUE_CAPACITY: "1000",
  });
  const load = await postOrdersUntil(service.url, {
    concurrency: 4,
    stop: sleep(500),
    maxMs: 5000,
  });
  await waitUntilSettled(service.url);
  const orders = await listAllOrders(service.url);
  const failed = orders.filter((order) => order.status === "failed");
  const completed = orders.filter((order) => order.status === "completed");
  assert.equal(failed.length + completed.length, load.created.length);
  assert.ok(
    failed.length > 0,
    "with a 30% step failure rate some orders must fail",
  );
  assert.ok(
    completed.some((order) => order.attempts === 2),
    "some orders must succeed on a retry",
  );
  for (const order of failed) {
    assert.equal(order.attempts, 2);
    assert.match(order.failure_reason ?? "", /failed/);
  }
  for (const order of completed) assert.equal(order.failure_reason, null);
  // Still processing after all those failures: no worker died.
  const after = await fetch(`${service.url}/orders`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      customer_id: "c",
      restaurant_id: "r",
      items: ["x"],
    }),
  });
  const { id } = await after.json();
  await waitUntilSettled(service.url);
  const final = await (await fetch(`${service.url}/orders/${id}`)).json();
  assert.ok(TERMINAL.has(final.status));
  service.kill("SIGTERM");
  assert.equal((await service.status).code, 0);
  const summary = summaryOf(service.records);
  assert.equal(summary.accepted, load.created.length + 1);
  assert.equal(summary.completed! + summary.failed!, summary.accepted);
  const warnings = service.records.filter((record) =>
    record.level === "WARN" && record.orderId
  );
  assert.ok(
    warnings.length > 0,
    "failed steps are logged at warning with the order id",
  );
});
