/**
 * The store contract against PostgreSQL, each test in a schema of its own
 * (dropped afterwards), plus what only this store does. Needs a PostgreSQL
 * server (TEST_DATABASE_URL, default the loopback one our machines run);
 * CI starts it and requires these tests.
 */

import assert from "node:assert/strict";
// @ts-types="npm:@types/pg@8.23.1"
import pg from "pg";
import { StoreOpenError } from "../../lib/orders/errors.ts";
import {
  POSTGRES_SCHEMA_VERSION,
  PostgresStore,
  redactUrl,
  WRITE_SESSION_SETTINGS,
  writeStatement,
} from "../../lib/store/postgres.ts";
import { PostgresListener } from "../../lib/store/postgres_listener.ts";
import { listStatement } from "../../lib/store/postgres_sql.ts";
import type { ListOptions } from "../../lib/orders/order_store.ts";
import { EXAMPLE_ORDER, waitUntil } from "../helpers.ts";
import { storeContract } from "./contract.ts";
import {
  adminQuery,
  freshSchema,
  isReachable,
  TEST_DATABASE_URL,
} from "./postgres_admin.ts";

const URL_ = TEST_DATABASE_URL;
const available = await isReachable();
if (!available && Deno.env.get("CI") === "true") {
  throw new Error(`PostgreSQL must be reachable in CI at ${redactUrl(URL_)}`);
}

if (available) {
  storeContract("postgres", async () => {
    const { schema, drop } = freshSchema();
    const store = await PostgresStore.open(URL_, { schema, poolSize: 4 });
    return {
      store,
      coordination: store.coordination,
      control: store.control,
      webhooks: store.webhooks,
      dispose: async () => {
        await store.close();
        await drop();
      },
    };
  });
}

Deno.test({
  name:
    "PostgreSQL store: instances opening one schema together migrate it once, and a newer schema version refuses to open",
  ignore: !available, // stated reason: no PostgreSQL server reachable here
  async fn() {
    const { schema, drop } = freshSchema();
    try {
      const stores = await Promise.all(
        Array.from({ length: 4 }, () => PostgresStore.open(URL_, { schema })),
      );
      await Promise.all(stores.map((store) => store.close()));
      const rows = await adminQuery<{ version: number }>(
        `SELECT version FROM "${schema}".schema_version`,
      );
      assert.deepEqual(rows.map((row) => row.version), [
        POSTGRES_SCHEMA_VERSION,
      ]);
      await adminQuery(`UPDATE "${schema}".schema_version SET version = $1`, [
        POSTGRES_SCHEMA_VERSION + 1,
      ]);
      await assert.rejects(
        PostgresStore.open(URL_, { schema }),
        (error: Error) =>
          error instanceof StoreOpenError && /newer/.test(error.message),
      );
    } finally {
      await drop();
    }
  },
});

Deno.test("redactUrl() hides a password and keeps the rest", () => {
  assert.equal(
    redactUrl("postgres://app:s3cret@db.example:5432/orders"),
    "postgres://app:***@db.example:5432/orders",
  );
  assert.equal(
    redactUrl("postgresql://127.0.0.1/test"),
    "postgresql://127.0.0.1/test",
  );
});

Deno.test({
  name:
    "PostgreSQL store: an unreachable server or a missing database fails to open with the reason, never the password",
  ignore: !available,
  async fn() {
    for (
      const url of [
        "postgres://root:hunter2@127.0.0.1:1/test",
        `postgres://root:hunter2@127.0.0.1:5432/no_such_db_${
          crypto.randomUUID().slice(0, 8)
        }`,
      ]
    ) {
      await assert.rejects(
        PostgresStore.open(url, {
          schema: "never_created",
          connectTimeoutMs: 300,
        }),
        (error: Error) =>
          error instanceof StoreOpenError &&
          !error.message.includes("hunter2") &&
          error.message.includes("***"),
      );
    }
  },
});

Deno.test({
  name:
    "PostgreSQL store: a create and a change that share a statement are answered apart: the database refusing one does not fail the other",
  ignore: !available,
  async fn() {
    const { schema, drop } = freshSchema();
    const store = await PostgresStore.open(URL_, { schema, poolSize: 4 });
    try {
      const { order } = await store.create(EXAMPLE_ORDER);
      // One write in flight, so that the next two wait and go together.
      const busy = store.create(EXAMPLE_ORDER);
      const [created, refused] = await Promise.allSettled([
        store.create(EXAMPLE_ORDER),
        // attempts is an integer column: 2^40 is out of its range.
        store.transition(order.id, {
          action: "retry",
          from: ["pending"],
          set: { attempts: 2 ** 40 },
        }),
      ]);
      await busy;
      assert.equal(created.status, "fulfilled");
      assert.equal(refused.status, "rejected");
      assert.match(String(refused.reason), /out of range/);
      assert.deepEqual(await store.get(order.id), order, "unchanged");
    } finally {
      await store.close();
      await drop();
    }
  },
});

Deno.test({
  name:
    "PostgreSQL store: the prepared write statement's generic plan reaches orders by index, though it is made while the table is empty",
  ignore: !available,
  async fn() {
    const { schema, drop } = freshSchema();
    await (await PostgresStore.open(URL_, { schema })).close();
    // The plan a prepared statement keeps once PostgreSQL settles on a
    // generic one (forced here, so the test does not wait for that).
    const genericPlan = async (options: string) => {
      const client = new pg.Client({
        connectionString: URL_,
        options: `${options} -c plan_cache_mode=force_generic_plan`,
      });
      await client.connect();
      try {
        await client.query(
          `PREPARE w AS ${writeStatement(`"${schema}".orders`)}`,
        );
        const { rows } = await client.query<{ "QUERY PLAN": string }>(
          "EXPLAIN EXECUTE w('[]', 0, '[]', 'i', '[]', '{}')",
        );
        return rows.map((row) => row["QUERY PLAN"]).join("\n");
      } finally {
        await client.end();
      }
    };
    try {
      const plan = await genericPlan(WRITE_SESSION_SETTINGS);
      assert.match(plan, /Index Scan on orders_pkey/);
      assert.doesNotMatch(plan, /Seq Scan on orders/);
      // Why the settings are there: without them the plan scans the table
      // (it looked small), and keeps doing so as the table grows.
      assert.match(await genericPlan(""), /Seq Scan on orders/);
    } finally {
      await drop();
    }
  },
});

Deno.test({
  name:
    "PostgreSQL store: a list by customer, by restaurant or by creation time reads its index, not the whole table",
  ignore: !available,
  async fn() {
    const { schema, drop } = freshSchema();
    await (await PostgresStore.open(URL_, { schema })).close();
    const table = `"${schema}".orders`;
    try {
      // 20,000 orders of 500 customers and 200 restaurants, a second apart.
      await adminQuery(
        `INSERT INTO ${table} (id, customer_id, restaurant_id, items, status,
           created_at, updated_at, attempts, cancel_requested, timeline)
         SELECT 'ORD-' || lpad(g::text, 26, '0'), 'c_' || (g % 500),
           'r_' || (g % 200), '[]', 'completed', 1796600000000 + g * 1000,
           1796600000000 + g * 1000, 1, false, '[]'
         FROM generate_series(1, 20000) AS g`,
      );
      await adminQuery(`ANALYZE ${table}`);
      const plan = async (options: Omit<ListOptions, "limit">) => {
        const { text, values } = listStatement(table, {
          limit: 100,
          ...options,
        });
        const rows = await adminQuery<{ "QUERY PLAN": string }>(
          `EXPLAIN ${text}`,
          values,
        );
        return rows.map((row) => row["QUERY PLAN"]).join("\n");
      };
      const byCustomer = await plan({ customerId: "c_7" });
      assert.match(byCustomer, /orders_customer_id/, byCustomer);
      const byRestaurant = await plan({
        restaurantId: "r_7",
        after: "ORD-" + "0".repeat(20),
      });
      assert.match(byRestaurant, /orders_restaurant_id/, byRestaurant);
      const byTime = await plan({
        createdAfter: 1796600000000 + 5000 * 1000,
        createdBefore: 1796600000000 + 5100 * 1000,
      });
      assert.match(byTime, /orders_pkey/, byTime);
      for (const each of [byCustomer, byRestaurant, byTime]) {
        assert.doesNotMatch(each, /Seq Scan/, each);
      }
    } finally {
      await drop();
    }
  },
});

Deno.test({
  name:
    "PostgreSQL listener: a NOTIFY from another connection is delivered; its own connection's NOTIFYs are not (the feed sends those about events it has read)",
  ignore: !available,
  async fn() {
    const channel = `test_${crypto.randomUUID().slice(0, 8)}`;
    const heard: string[] = [];
    const listener = new PostgresListener(
      { connectionString: URL_ },
      [channel],
      { onNotify: (_, payload) => heard.push(payload), onConnect() {} },
    );
    await listener.connect();
    try {
      await listener.query("SELECT pg_notify($1, 'own')", [channel]);
      await adminQuery("SELECT pg_notify($1, 'other')", [channel]);
      await waitUntil(() => heard.length > 0, "the other's NOTIFY");
      // Both were sent before the other's arrived, in this order.
      await listener.query("SELECT 1");
      assert.deepEqual(heard, ["other"]);
    } finally {
      await listener.close();
    }
  },
});

Deno.test({
  name:
    "PostgreSQL store: a control record written through one instance is read by another, and writeIfAbsent is one winner across them",
  ignore: !available, // stated reason: no PostgreSQL server reachable here
  async fn() {
    const { schema, drop } = freshSchema();
    try {
      const [one, two] = await Promise.all([
        PostgresStore.open(URL_, { schema }),
        PostgresStore.open(URL_, { schema }),
      ]);
      await one!.control.write("processing.paused", "on");
      assert.equal(await two!.control.read("processing.paused"), "on");
      const answers = await Promise.all(
        [one!, two!, one!, two!].map((store, index) =>
          store.control.writeIfAbsent("bulk:k", `v${index}`)
        ),
      );
      assert.equal(answers.filter((answer) => answer === undefined).length, 1);
      await Promise.all([one!.close(), two!.close()]);
    } finally {
      await drop();
    }
  },
});

Deno.test({
  name:
    "PostgreSQL store: the webhook trigger's look for enabled endpoints is an index scan in the write sessions, never a JIT-compiled sequential scan",
  ignore: !available, // stated reason: no PostgreSQL server reachable here
  async fn() {
    const { schema, drop } = freshSchema();
    await (await PostgresStore.open(URL_, { schema })).close();
    const client = new pg.Client({
      connectionString: URL_,
      options: WRITE_SESSION_SETTINGS,
    });
    await client.connect();
    try {
      const { rows } = await client.query<{ "QUERY PLAN": string }>(
        `EXPLAIN SELECT 1 FROM "${schema}".webhook_endpoints
          WHERE disabled_at IS NULL LIMIT 1`,
      );
      const plan = rows.map((row) => row["QUERY PLAN"]).join("\n");
      assert.match(plan, /Index Only Scan|Index Scan/);
      assert.doesNotMatch(plan, /Seq Scan/);
      assert.doesNotMatch(plan, /JIT/);
    } finally {
      await client.end();
      await drop();
    }
  },
});
