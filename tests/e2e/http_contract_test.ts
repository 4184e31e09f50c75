/**
 * The HTTP contract as a client sees it, against the real process
 * (`deno task start`): every answer's status, its problem+json for an
 * error, and the headers every response carries. Each request goes on a
 * connection of its own, so that in CI's second pass (two isolates per
 * service, `TEST_PARALLEL=2`) requests land on either isolate, and those
 * for an order of the other one cross to it and back.
 */

import assert from "node:assert/strict";
import { startService } from "./service_process.ts";
import { EXAMPLE_ORDER } from "../helpers.ts";

/** Sends a request on a connection of its own; the answer, read whole. */
async function send(
  url: string,
  init: RequestInit = {},
): Promise<{ response: Response; body: string }> {
  const client = Deno.createHttpClient({ poolMaxIdlePerHost: 0 });
  try {
    const response = await fetch(url, { ...init, client });
    return { response, body: await response.text() };
  } finally {
    client.close();
  }
}

const json = (body: unknown) => ({
  method: "POST",
  headers: { "content-type": "application/json" },
  body: typeof body === "string" ? body : JSON.stringify(body),
});

/** Checks an answer is `status` as RFC 9457 problem+json, with the usual headers. */
function assertProblem(
  answer: { response: Response; body: string },
  status: number,
  what: string,
): Record<string, unknown> {
  const { response, body } = answer;
  assert.equal(response.status, status, `${what}: ${body}`);
  assert.equal(
    response.headers.get("content-type"),
    "application/problem+json",
    what,
  );
  assert.equal(response.headers.get("x-content-type-options"), "nosniff");
  const requestId = response.headers.get("x-request-id");
  assert.ok(requestId, `${what}: no X-Request-Id`);
  const problem = JSON.parse(body);
  assert.equal(problem.status, status, what);
  for (const member of ["type", "title", "detail", "instance"]) {
    assert.equal(typeof problem[member], "string", `${what}: ${member}`);
  }
  assert.equal(problem.request_id, requestId, what);
  return problem;
}

Deno.test("the HTTP contract, request by request on fresh connections: statuses, problem+json for every error, the headers every answer carries", async (t) => {
  // Steps of about a second: an order can be caught processing.
  const service = await startService({ LATENCY_SCALE: "0.5" });
  const url = service.url;
  try {
    const made: string[] = [];
    await t.step("POST /orders: 201, Location, the pending order", async () => {
      for (let index = 0; index < 6; index++) {
        const { response, body } = await send(
          `${url}/orders`,
          json(EXAMPLE_ORDER),
        );
        assert.equal(response.status, 201, body);
        const order = JSON.parse(body);
        assert.equal(order.status, "pending");
        assert.equal(response.headers.get("location"), `/orders/${order.id}`);
        assert.ok(response.headers.get("x-request-id"));
        made.push(order.id);
      }
    });

    await t.step(
      "GET /orders/{id}: every order from any connection",
      async () => {
        for (const id of made) {
          const { response, body } = await send(`${url}/orders/${id}`, {
            headers: { "x-request-id": `read-${id}` },
          });
          assert.equal(response.status, 200, body);
          assert.equal(JSON.parse(body).id, id);
          assert.equal(response.headers.get("x-request-id"), `read-${id}`);
        }
      },
    );

    await t.step("bad bodies: 400, 415, 413, 422", async () => {
      assertProblem(await send(`${url}/orders`, json("{")), 400, "bad JSON");
      assertProblem(
        await send(`${url}/orders`, {
          method: "POST",
          headers: { "content-type": "text/plain" },
          body: JSON.stringify(EXAMPLE_ORDER),
        }),
        415,
        "not JSON",
      );
      assertProblem(
        await send(
          `${url}/orders`,
          json({ ...EXAMPLE_ORDER, customer_id: "c".repeat(70_000) }),
        ),
        413,
        "too big",
      );
      const invalid = assertProblem(
        await send(`${url}/orders`, json({ ...EXAMPLE_ORDER, items: [] })),
        422,
        "no items",
      );
      assert.ok(Array.isArray(invalid.errors), "each bad field listed");
    });

    await t.step(
      "an Idempotency-Key: one order, and 422 for another body",
      async () => {
        const keyed = {
          ...json(EXAMPLE_ORDER),
          headers: {
            "content-type": "application/json",
            "idempotency-key": "contract-key-1",
          },
        };
        const first = await send(`${url}/orders`, keyed);
        assert.equal(first.response.status, 201, first.body);
        const again = await send(`${url}/orders`, keyed);
        assert.equal(again.response.status, 200, again.body);
        assert.equal(JSON.parse(again.body).id, JSON.parse(first.body).id);
        assertProblem(
          await send(`${url}/orders`, {
            ...keyed,
            body: JSON.stringify({ ...EXAMPLE_ORDER, items: ["soup"] }),
          }),
          422,
          "the key with another body",
        );
        made.push(JSON.parse(first.body).id);
      },
    );

    await t.step(
      "orders that do not exist: 404 for a read, a cancel and a stream",
      async () => {
        // Well-formed ids, one for each isolate a second pass may run.
        for (const mark of ["0", "1"]) {
          const id = `ORD-01JD0000AB${mark}${"C".repeat(15)}`;
          assertProblem(await send(`${url}/orders/${id}`), 404, `read ${id}`);
          assertProblem(
            await send(`${url}/orders/${id}/cancel`, { method: "POST" }),
            404,
            `cancel ${id}`,
          );
          assertProblem(
            await send(`${url}/orders/${id}/events`),
            404,
            `stream ${id}`,
          );
        }
        assertProblem(await send(`${url}/orders/not-an-id`), 404, "not an id");
      },
    );

    await t.step(
      "a cancel: 200 or 202 at once, then 409 once it is final",
      async () => {
        for (const id of made.slice(0, 3)) {
          const { response, body } = await send(`${url}/orders/${id}/cancel`, {
            method: "POST",
          });
          assert.ok([200, 202].includes(response.status), body);
        }
        const id = made[0]!;
        let final = false;
        for (let tries = 0; tries < 100 && !final; tries++) {
          const { body } = await send(`${url}/orders/${id}`);
          final = JSON.parse(body).status === "cancelled";
          if (!final) await new Promise((resolve) => setTimeout(resolve, 50));
        }
        assert.ok(final, `${id} cancelled`);
        assertProblem(
          await send(`${url}/orders/${id}/cancel`, { method: "POST" }),
          409,
          "cancel of a cancelled order",
        );
      },
    );

    await t.step(
      "GET /orders: bad queries answer 400; a page lists orders",
      async () => {
        for (
          const query of [
            "status=bogus",
            "limit=0",
            "limit=5000",
            "cursor=zzz",
            "nope=1",
            "limit=1&limit=2",
          ]
        ) {
          assertProblem(await send(`${url}/orders?${query}`), 400, query);
        }
        const { response, body } = await send(`${url}/orders?limit=1000`);
        assert.equal(response.status, 200);
        const listed = JSON.parse(body).map((order: { id: string }) =>
          order.id
        );
        assert.deepEqual(listed, [...made].sort());
      },
    );

    await t.step(
      "GET /orders by customer: every match once, over pages whose links keep the filter",
      async () => {
        const mine: string[] = [];
        for (let index = 0; index < 5; index++) {
          const { body } = await send(
            `${url}/orders`,
            json({ ...EXAMPLE_ORDER, customer_id: "c_contract" }),
          );
          mine.push(JSON.parse(body).id);
        }
        const listed: string[] = [];
        let next: string | undefined = "/orders?limit=2&customer_id=c_contract";
        while (next !== undefined) {
          const { response, body } = await send(`${url}${next}`);
          assert.equal(response.status, 200, body);
          listed.push(
            ...JSON.parse(body).map((order: { id: string }) => order.id),
          );
          const link = response.headers.get("link");
          next = link ? /<([^>]+)>; rel="next"/.exec(link)![1] : undefined;
        }
        assert.deepEqual(listed, [...mine].sort());
        made.push(...mine);
      },
    );

    await t.step(
      "unknown paths 404, a wrong method 405 with Allow",
      async () => {
        assertProblem(await send(`${url}/nowhere`), 404, "unknown path");
        assertProblem(await send(`${url}/orders/`), 404, "trailing slash");
        const wrong = await send(`${url}/orders`, { method: "DELETE" });
        assertProblem(wrong, 405, "DELETE /orders");
        assert.match(wrong.response.headers.get("allow") ?? "", /GET/);
      },
    );
  } finally {
    service.kill("SIGTERM");
  }
  assert.equal((await service.status).code, 0);
});
