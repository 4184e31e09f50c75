/**
 * The webhook sender against real servers on loopback. Names under
 * `.test` do not resolve on this machine; the tests give the sender a
 * resolver that answers for them, so a request that arrives proves the
 * connection went to the address the sender's own resolution (the one
 * the policy checked) gave, and not to one resolved again elsewhere.
 */

import assert from "node:assert/strict";
import { WebhookSender } from "../../lib/webhooks/sender.ts";

const open = { allowHttp: true, allowPrivate: true };
const strict = { allowHttp: true, allowPrivate: false };

/** A resolver answering from `answers`, counting its calls. */
function resolver(answers: Record<string, string[] | (() => string[])>) {
  const asked: string[] = [];
  const resolve = (host: string) => {
    asked.push(host);
    const answer = answers[host];
    return Promise.resolve(
      typeof answer === "function" ? answer() : answer ?? [],
    );
  };
  return { asked, resolve };
}

interface Server {
  port: number;
  hosts: string[];
  close(): Promise<void>;
}

function serve(
  handler: (request: Request) => Response | Promise<Response>,
  tls?: { cert: string; key: string },
): Promise<Server> {
  const hosts: string[] = [];
  const listening = Promise.withResolvers<number>();
  const server = Deno.serve({
    port: 0,
    hostname: "127.0.0.1",
    onListen: ({ port }) => listening.resolve(port),
    ...tls,
  }, async (request) => {
    hosts.push(request.headers.get("host") ?? "");
    await request.body?.cancel();
    return await handler(request);
  });
  return listening.promise.then((port) => ({
    port,
    hosts,
    close: () => server.shutdown(),
  }));
}

const HEADERS = { "content-type": "application/json" };

Deno.test("the connection goes to the address the sender's resolution gave (a name no other resolver knows), and keeps it for the next message", async () => {
  const server = await serve(() => new Response(null, { status: 204 }));
  const dns = resolver({ "hooks.test": ["127.0.0.1"] });
  const sender = new WebhookSender({ policy: open, resolve: dns.resolve });
  try {
    const url = `http://hooks.test:${server.port}/in`;
    assert.deepEqual(await sender.send(url, HEADERS, "{}"), {
      ok: true,
      status: 204,
      error: null,
    });
    assert.equal((await sender.send(url, HEADERS, "{}")).ok, true);
    assert.deepEqual(server.hosts, [
      `hooks.test:${server.port}`,
      `hooks.test:${server.port}`,
    ]);
    // The second message went over the kept connection.
    assert.deepEqual(dns.asked, ["hooks.test"]);
  } finally {
    sender.close();
    await server.close();
  }
});

Deno.test("a name that resolves to a private address when connecting is refused then, whatever it resolved to before (DNS rebinding); nothing is sent", async () => {
  const server = await serve(() => new Response(null, { status: 204 }));
  let calls = 0;
  // Public to whoever asked first (a check at registration), loopback after.
  const dns = resolver({
    "rebind.test": () => calls++ === 0 ? ["93.184.216.34"] : ["127.0.0.1"],
    "mixed.test": ["93.184.216.34", "10.0.0.7"],
  });
  const sender = new WebhookSender({ policy: strict, resolve: dns.resolve });
  try {
    assert.deepEqual(await dns.resolve("rebind.test"), ["93.184.216.34"]);
    const rebound = await sender.send(
      `http://rebind.test:${server.port}/`,
      HEADERS,
      "{}",
    );
    assert.equal(rebound.ok, false);
    assert.match(
      rebound.error!,
      /^refused: rebind\.test resolves to 127\.0\.0\.1/,
    );
    const mixed = await sender.send(
      `http://mixed.test:${server.port}/`,
      HEADERS,
      "{}",
    );
    assert.match(mixed.error!, /^refused: mixed\.test resolves to 10\.0\.0\.7/);
    const literal = await sender.send(
      `http://127.0.0.1:${server.port}/`,
      HEADERS,
      "{}",
    );
    assert.match(literal.error!, /^refused: .*127\.0\.0\.1/);
    assert.deepEqual(server.hosts, []);
  } finally {
    sender.close();
    await server.close();
  }
});

Deno.test("https: the certificate is checked against the URL's name while connecting to the resolved address", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const made = await new Deno.Command("openssl", {
      args: [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        `${dir}/key.pem`,
        "-out",
        `${dir}/cert.pem`,
        "-days",
        "1",
        "-subj",
        "/CN=hooks.test",
        "-addext",
        "subjectAltName=DNS:hooks.test",
      ],
      stderr: "null",
    }).output();
    assert.ok(made.success, "openssl made the test certificate");
    const cert = await Deno.readTextFile(`${dir}/cert.pem`);
    const key = await Deno.readTextFile(`${dir}/key.pem`);
    const server = await serve(() => new Response("ok"), { cert, key });
    const dns = resolver({
      "hooks.test": ["127.0.0.1"],
      "impostor.test": ["127.0.0.1"],
    });
    const sender = new WebhookSender({
      policy: open,
      resolve: dns.resolve,
      ca: [cert],
    });
    try {
      const good = await sender.send(
        `https://hooks.test:${server.port}/`,
        HEADERS,
        "{}",
      );
      assert.deepEqual(good, { ok: true, status: 200, error: null });
      const wrong = await sender.send(
        `https://impostor.test:${server.port}/`,
        HEADERS,
        "{}",
      );
      assert.equal(wrong.ok, false);
      assert.match(wrong.error!, /^could not send: .*impostor\.test/);
      assert.equal(server.hosts.length, 1);
    } finally {
      sender.close();
      await server.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an answer that never ends is read to 64 KiB and settles; a redirect is an answer, not followed; a silent server times out; a closed port could not be sent to", async () => {
  const chunk = new Uint8Array(16 * 1024);
  let streamed = 0;
  const hang = Promise.withResolvers<Response>();
  const server = await serve((request) => {
    const path = new URL(request.url).pathname;
    if (path === "/endless") {
      return new Response(
        new ReadableStream({
          pull(controller) {
            streamed += chunk.byteLength;
            controller.enqueue(chunk);
          },
        }),
      );
    }
    if (path === "/moved") {
      return new Response(null, {
        status: 307,
        headers: { location: "/elsewhere" },
      });
    }
    return hang.promise; // answers only once the test is over
  });
  const sender = new WebhookSender({ policy: open, timeoutMs: 300 });
  try {
    const base = `http://127.0.0.1:${server.port}`;
    assert.deepEqual(await sender.send(`${base}/endless`, HEADERS, "{}"), {
      ok: true,
      status: 200,
      error: null,
    });
    assert.ok(streamed < 4 * 1024 * 1024, `the server streamed ${streamed}`);
    assert.deepEqual(await sender.send(`${base}/moved`, HEADERS, "{}"), {
      ok: false,
      status: 307,
      error: "the endpoint answered 307",
    });
    assert.deepEqual(server.hosts.length, 2);
    const silent = await sender.send(`${base}/silent`, HEADERS, "{}");
    assert.deepEqual(silent, { ok: false, error: "no answer within 300 ms" });
    const closed = await Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (closed.addr as Deno.NetAddr).port;
    closed.close();
    const refused = await sender.send(
      `http://127.0.0.1:${port}/`,
      HEADERS,
      "{}",
    );
    assert.equal(refused.ok, false);
    assert.match(refused.error!, /^could not send: /);
  } finally {
    sender.close();
    hang.resolve(new Response(null));
    await server.close();
  }
});
