import assert from "node:assert/strict";
import {
  isPrivateAddress,
  refuseUrl,
  resolveAllowed,
} from "../../lib/webhooks/address_policy.ts";

const strict = { allowHttp: false, allowPrivate: false };

Deno.test("isPrivateAddress: the loopback, private, link-local, metadata, unique-local and unspecified ranges, IPv4 mapped in IPv6 too; public addresses are not", () => {
  for (
    const address of [
      "127.0.0.1",
      "127.255.0.9",
      "10.1.2.3",
      "172.16.0.1",
      "172.31.255.254",
      "192.168.1.1",
      "169.254.169.254",
      "0.0.0.0",
      "::1",
      "::",
      "fc00::1",
      "fd12:3456::1",
      "fe80::1",
      "::ffff:10.0.0.1",
      "::ffff:127.0.0.1",
      "100.64.0.1",
    ]
  ) assert.equal(isPrivateAddress(address), true, address);
  for (
    const address of [
      "1.1.1.1",
      "172.32.0.1",
      "93.184.216.34",
      "2606:4700:4700::1111",
      "::ffff:8.8.8.8",
    ]
  ) assert.equal(isPrivateAddress(address), false, address);
});

Deno.test("refuseUrl: https only unless http is allowed; no credentials; an address literal in a private range only when allowed", () => {
  assert.equal(
    refuseUrl("https://hooks.example.com/orders", strict),
    undefined,
  );
  assert.match(refuseUrl("http://hooks.example.com/", strict)!, /https/);
  assert.equal(
    refuseUrl("http://hooks.example.com/", { ...strict, allowHttp: true }),
    undefined,
  );
  assert.match(refuseUrl("ftp://hooks.example.com/", strict)!, /https/);
  assert.match(refuseUrl("not a url", strict)!, /absolute URL/);
  assert.match(
    refuseUrl("https://u:p@hooks.example.com/", strict)!,
    /password/,
  );
  assert.match(refuseUrl("https://127.0.0.1:8443/", strict)!, /127\.0\.0\.1/);
  assert.match(refuseUrl("https://[::1]/", strict)!, /::1/);
  assert.match(refuseUrl("https://169.254.169.254/latest", strict)!, /range/);
  assert.equal(
    refuseUrl("https://127.0.0.1:8443/", { ...strict, allowPrivate: true }),
    undefined,
  );
});

Deno.test("resolveAllowed: a name resolving to any private address is refused, as is one resolving to none; allowed when private addresses are", async () => {
  const resolver = (answers: Record<string, string[]>) => (host: string) =>
    Promise.resolve(answers[host] ?? []);
  const dns = resolver({
    "public.test": ["93.184.216.34"],
    "mixed.test": ["93.184.216.34", "10.0.0.7"],
    "metadata.test": ["169.254.169.254"],
  });
  const check = (host: string, policy = strict) =>
    resolveAllowed(new URL(`https://${host}/`), policy, dns);
  assert.equal(await check("public.test"), undefined);
  assert.match((await check("mixed.test"))!, /10\.0\.0\.7/);
  assert.match((await check("metadata.test"))!, /169\.254\.169\.254/);
  assert.match((await check("nowhere.test"))!, /does not resolve/);
  assert.equal(
    await check("metadata.test", { ...strict, allowPrivate: true }),
    undefined,
  );
});
