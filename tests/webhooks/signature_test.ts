/**
 * Our signatures, checked by the Standard Webhooks reference library
 * (`standardwebhooks`, the spec's own TypeScript package), not by our code.
 */

import assert from "node:assert/strict";
import { Webhook } from "../deps.ts";
import { newSecret, signatureHeader } from "../../lib/webhooks/signature.ts";

const body = JSON.stringify({
  type: "order.completed",
  timestamp: "2026-12-07T16:00:00.000Z",
  data: { id: "ORD-01M98MB9HZ25ND6HGVY4AZ37QG", status: "completed" },
});

async function signed(secrets: string[], content = body) {
  const id = "msg_2f3vW0oY7nQk1";
  const timestamp = Math.floor(Date.now() / 1000);
  return {
    "webhook-id": id,
    "webhook-timestamp": String(timestamp),
    "webhook-signature": await signatureHeader(secrets, id, timestamp, content),
  };
}

Deno.test("a new secret is whsec_ and the base64 of at least 24 random bytes, never the same twice", () => {
  const secrets = new Set(Array.from({ length: 100 }, newSecret));
  assert.equal(secrets.size, 100);
  for (const secret of secrets) {
    assert.match(secret, /^whsec_[A-Za-z0-9+/]+=*$/);
    assert.ok(atob(secret.slice(6)).length >= 24);
  }
});

Deno.test("standardwebhooks verifies what we sign; a tampered body, a wrong secret or an old timestamp fail", async () => {
  const secret = newSecret();
  const headers = await signed([secret]);
  assert.deepEqual(new Webhook(secret).verify(body, headers), JSON.parse(body));
  assert.throws(() =>
    new Webhook(secret).verify(body.replace("completed", "cancelled"), headers)
  );
  assert.throws(() => new Webhook(newSecret()).verify(body, headers));
  const id = "msg_old";
  const stale = Math.floor(Date.now() / 1000) - 3600;
  assert.throws(() =>
    new Webhook(secret).verify(body, {
      "webhook-id": id,
      "webhook-timestamp": String(stale),
      "webhook-signature": "v1,AAAA",
    })
  );
});

Deno.test("signed with two secrets (a rotation's overlap), the header has two v1 entries and either secret verifies", async () => {
  const [old, current] = [newSecret(), newSecret()];
  const headers = await signed([current, old]);
  assert.equal(headers["webhook-signature"].split(" ").length, 2);
  for (const entry of headers["webhook-signature"].split(" ")) {
    assert.match(entry, /^v1,[A-Za-z0-9+/]+=*$/);
  }
  new Webhook(old).verify(body, headers);
  new Webhook(current).verify(body, headers);
  assert.throws(() => new Webhook(newSecret()).verify(body, headers));
});
