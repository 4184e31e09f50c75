import assert from "node:assert/strict";
import { parseApiKeysFile } from "../../lib/http/auth.ts";
import { drainSystem, EXAMPLE_ORDER, testSystem } from "../helpers.ts";

const KEY = "k3y-0123456789abcdef";
const OTHER_KEY = "second-key-0123456789";

function authedSystem() {
  return testSystem({ apiKeys: [KEY, OTHER_KEY] });
}

function postOrder(authorization?: string) {
  return new Request("http://localhost/orders", {
    method: "POST",
    headers: {
      "content-type": "application/json",
      ...(authorization === undefined ? {} : { authorization }),
    },
    body: JSON.stringify(EXAMPLE_ORDER),
  });
}

Deno.test("with API keys, a missing, malformed or wrong key answers 401 problem+json with WWW-Authenticate", async () => {
  const system = authedSystem();
  try {
    for (
      const authorization of [
        undefined,
        "Basic abc",
        "Bearer",
        `Bearer ${KEY}x`,
        "Bearer wrong-key-0123456789",
      ]
    ) {
      const response = await system.app.request(postOrder(authorization));
      assert.equal(response.status, 401, `authorization ${authorization}`);
      assert.match(response.headers.get("www-authenticate") ?? "", /^Bearer/);
      assert.ok(response.headers.get("x-request-id"));
      assert.equal(response.headers.get("x-content-type-options"), "nosniff");
      assert.equal(
        response.headers.get("content-type"),
        "application/problem+json",
      );
      assert.equal((await response.json()).status, 401);
    }
    assert.equal((await system.store.list({ limit: 10 })).orders.length, 0);
  } finally {
    await drainSystem(system);
  }
});

Deno.test("with API keys, any configured key is accepted on every endpoint", async () => {
  const system = authedSystem();
  try {
    const created = await system.app.request(postOrder(`Bearer ${KEY}`));
    assert.equal(created.status, 201);
    const { id } = await created.json();
    const read = await system.app.request(`/orders/${id}`, {
      headers: { authorization: `Bearer ${OTHER_KEY}` },
    });
    assert.equal(read.status, 200);
    await read.body?.cancel();
    const unauthenticatedRead = await system.app.request(`/orders/${id}`);
    assert.equal(unauthenticatedRead.status, 401);
    await unauthenticatedRead.body?.cancel();
    const unknown = await system.app.request("/nowhere");
    assert.equal(unknown.status, 401, "no route enumeration without a key");
    await unknown.body?.cancel();
  } finally {
    await drainSystem(system);
  }
});

Deno.test("with API keys, /health and /ready still answer without one", async () => {
  const system = authedSystem();
  try {
    for (const path of ["/health", "/ready"]) {
      const response = await system.app.request(path);
      assert.equal(response.status, 200, path);
      await response.body?.cancel();
    }
  } finally {
    await drainSystem(system);
  }
});

Deno.test("without API keys the API is open", async () => {
  const system = testSystem();
  try {
    const response = await system.app.request(postOrder());
    assert.equal(response.status, 201);
    await response.body?.cancel();
  } finally {
    await drainSystem(system);
  }
});

Deno.test("an API keys file holds one key per line; blanks and comments are skipped", () => {
  assert.deepEqual(
    parseApiKeysFile(`# ops keys\n${KEY}\r\n\n  ${OTHER_KEY}  \n`),
    [KEY, OTHER_KEY],
  );
});
