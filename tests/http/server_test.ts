import assert from "node:assert/strict";
import { getLogger } from "@logtape/logtape";
import { ResilientServer } from "../../lib/http/server.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function serverHolding(held: () => number[] | undefined) {
  return new ResilientServer(() => new Response("ok"), {
    hostname: "127.0.0.1",
    port: 0,
    idleTimeoutMs: 50,
    logger: getLogger(["order-service", "test"]),
    remotePorts: held,
  });
}

Deno.test("ResilientServer leaves its listener alone while every connection keeps sending requests", async () => {
  let clientPort = 0;
  const server = serverHolding(() => [clientPort]);
  try {
    for (let i = 0; i < 8; i++) {
      const conn = await Deno.connect({
        hostname: "127.0.0.1",
        port: server.port,
      });
      clientPort = (conn.localAddr as Deno.NetAddr).port;
      await conn.write(
        new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
      );
      await conn.read(new Uint8Array(1024));
      conn.close();
      await sleep(30);
    }
    assert.equal(server.rotations, 0);
  } finally {
    await server.shutdown();
  }
});

Deno.test("ResilientServer replaces its listener when a connection started no request for a period, and keeps its port", async () => {
  const server = serverHolding(() => [1]); // a port that never sent a request
  const port = server.port;
  await sleep(180);
  assert.ok(server.rotations >= 1, `rotations: ${server.rotations}`);
  const response = await fetch(`http://127.0.0.1:${port}/`);
  assert.equal(await response.text(), "ok");
  await server.shutdown();
});

Deno.test("ResilientServer closes nothing when it cannot see its connections", async () => {
  const server = serverHolding(() => undefined);
  await sleep(180);
  assert.equal(server.rotations, 0);
  await server.shutdown();
});

Deno.test("ResilientServer takes no connection for stale right after a stall, and still closes a stale one after", async () => {
  const server = serverHolding(() => [1]); // a port that never sent a request
  try {
    // The first check records the connection; the event loop then stalls
    // past two periods, as in a long GC pause or a stopped process.
    await sleep(60);
    const stalledUntil = performance.now() + 200;
    while (performance.now() < stalledUntil) { /* stalled */ }
    await sleep(5);
    assert.equal(server.rotations, 0, "not at the late check");
    await sleep(180);
    assert.ok(server.rotations >= 1, `rotations: ${server.rotations}`);
  } finally {
    await server.shutdown();
  }
});
