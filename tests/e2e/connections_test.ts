/**
 * Connections a client holds: running out of file descriptors, idle
 * connections and headers sent a byte at a time. Checked on the real
 * process, with a low `ulimit -n` where it matters.
 */

import assert from "node:assert/strict";
import { postOrder } from "./load.ts";
import { startService } from "./service_process.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves with the milliseconds until the peer closes or resets `conn`. */
async function timeUntilClosed(conn: Deno.Conn, maxMs: number) {
  const startedAt = performance.now();
  const buffer = new Uint8Array(4096);
  const deadline = setTimeout(() => conn.close(), maxMs);
  try {
    while (await conn.read(buffer) !== null) { /* a response; keep reading */ }
  } catch { /* reset by the peer, or closed by the deadline */ }
  clearTimeout(deadline);
  try {
    conn.close();
  } catch { /* already closed */ }
  return performance.now() - startedAt;
}

Deno.test("running out of file descriptors neither kills the service nor stops it for good", async () => {
  const service = await startService(
    { LATENCY_SCALE: "0", IDLE_TIMEOUT_MS: "600000" },
    { openFileLimit: 96 },
  );
  const held: Deno.Conn[] = [];
  let refused = 0;
  // More idle connections than the service has descriptors for.
  for (let i = 0; i < 200; i++) {
    try {
      held.push(
        await Deno.connect({ hostname: "127.0.0.1", port: service.port }),
      );
    } catch {
      refused++;
    }
  }
  // The limit was reached: the service says so. (Whether a connect is
  // refused depends on timing — while the listener is rebound, the kernel
  // completes handshakes into its backlog — so `refused` is not asserted.)
  const deadline = Date.now() + 5000;
  while (
    !service.records.some((record) =>
      record.message?.toString().startsWith("Cannot accept connections")
    ) && Date.now() < deadline
  ) await sleep(20);
  assert.ok(
    service.records.some((record) =>
      record.message?.toString().startsWith("Cannot accept connections")
    ),
    `the service's descriptor limit was reached (${refused} connects refused)`,
  );

  // At the limit a new request is refused or closed: it never hangs.
  const duringLimit = await postOrder(service.url, AbortSignal.timeout(5000))
    .then((response) => response.body?.cancel().then(() => "answered"))
    .catch((error: Error) => error.name);
  assert.notEqual(duringLimit, "TimeoutError", "a request at the limit hung");

  const exited = await Promise.race([
    service.status.then(() => true),
    sleep(300).then(() => false),
  ]);
  assert.equal(exited, false, "the process is still running at the limit");

  for (const conn of held) conn.close();
  // Service resumes by itself once descriptors are free again.
  let status = 0;
  for (let tries = 0; tries < 50 && status !== 201; tries++) {
    status = await postOrder(service.url)
      .then(async (response) => {
        await response.body?.cancel();
        return response.status;
      })
      .catch(() => 0);
    if (status !== 201) await sleep(100);
  }
  assert.equal(status, 201, "POST /orders works again after the limit");
  assert.ok(
    service.records.some((record) =>
      record.message?.toString().startsWith("Cannot accept connections")
    ),
    "the failure to accept is logged",
  );
  // And counted, for an alert that needs no /proc (the start task's
  // permissions do not open it).
  const metrics = await (await fetch(`${service.url}/metrics`)).text();
  const failures = /^http_accept_failures_total (\d+)$/m.exec(metrics)?.[1];
  assert.ok(Number(failures) >= 1, `http_accept_failures_total ${failures}`);
  service.kill("SIGTERM");
  assert.equal((await service.status).code, 0);
});

Deno.test("with --allow-all, connections that send nothing, trickle their headers or sit idle after a response are closed after IDLE_TIMEOUT_MS", async () => {
  const idleTimeoutMs = 300;
  const service = await startService({
    IDLE_TIMEOUT_MS: String(idleTimeoutMs),
  }, { allowAll: true });
  const connect = () =>
    Deno.connect({ hostname: "127.0.0.1", port: service.port });
  const silent = await connect();
  const keptAlive = await connect();
  await keptAlive.write(
    new TextEncoder().encode("GET /health HTTP/1.1\r\nHost: x\r\n\r\n"),
  );
  const trickling = await connect();
  const header = new TextEncoder().encode(
    "GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + "a".repeat(200),
  );
  const trickle = (async () => {
    for (const byte of header) {
      try {
        await trickling.write(Uint8Array.of(byte));
      } catch {
        return; // closed by the service
      }
      await sleep(20);
    }
  })();
  const maxMs = 5000;
  const [silentMs, keptAliveMs, tricklingMs] = await Promise.all([
    timeUntilClosed(silent, maxMs),
    timeUntilClosed(keptAlive, maxMs),
    timeUntilClosed(trickling, maxMs),
  ]);
  await trickle;
  // A connection lives until the second check that finds it idle: at most
  // two IDLE_TIMEOUT_MS, plus the time a graceful close takes.
  for (
    const [name, ms] of [
      ["silent", silentMs],
      ["idle after a response", keptAliveMs],
      ["trickling headers", tricklingMs],
    ] as const
  ) {
    assert.ok(ms < idleTimeoutMs * 4, `${name} closed after ${ms} ms`);
  }
  service.kill("SIGTERM");
  assert.equal((await service.status).code, 0);
});

Deno.test("with --allow-all, a request in progress is not cut when idle connections are closed", async () => {
  const service = await startService({
    IDLE_TIMEOUT_MS: "200",
    LATENCY_SCALE: "0",
  }, { allowAll: true });
  const stream = await fetch(`${service.url}/events`);
  const reader = stream.body!.pipeThrough(new TextDecoderStream()).getReader();
  await sleep(700); // several rotations while the stream is open
  const created = await postOrder(service.url);
  const order = await created.json();
  let received = "";
  while (!received.includes(order.id)) {
    const { value, done } = await reader.read();
    if (done) break;
    received += value;
  }
  assert.ok(received.includes(order.id), "the open stream saw the new order");
  await reader.cancel();
  service.kill("SIGTERM");
  assert.equal((await service.status).code, 0);
});

Deno.test("under deno task start, a keep-alive connection reused every half IDLE_TIMEOUT_MS is never cut, and the log says the idle check is off", async () => {
  const service = await startService({ IDLE_TIMEOUT_MS: "1000" });
  let conn = await Deno.connect({ hostname: "127.0.0.1", port: service.port });
  let cuts = 0;
  const request = new TextEncoder().encode(
    "GET /health HTTP/1.1\r\nHost: x\r\n\r\n",
  );
  const buffer = new Uint8Array(4096);
  for (let round = 0; round < 20; round++) {
    let answered = false;
    try {
      await conn.write(request);
      const read = await conn.read(buffer);
      answered = read !== null &&
        new TextDecoder().decode(buffer.subarray(0, read)).startsWith(
          "HTTP/1.1 200",
        );
    } catch { /* reset */ }
    if (!answered) {
      cuts++;
      conn.close();
      conn = await Deno.connect({ hostname: "127.0.0.1", port: service.port });
    }
    await sleep(500);
  }
  conn.close();
  assert.equal(cuts, 0, `the connection was cut ${cuts} times in 20`);
  assert.ok(
    service.records.some((record) =>
      String(record.message).startsWith("Idle connections are not closed")
    ),
  );
  service.kill("SIGTERM");
  assert.equal((await service.status).code, 0);
});

/** Sends `head` and `body` raw, half-closes when asked, and reads the answer's head. */
async function rawPost(
  port: number,
  headers: string,
  body: string,
  options: { halfClose: boolean },
): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(
      new TextEncoder().encode(
        "POST /orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" +
          headers + "\r\n" + body,
      ),
    );
    if (options.halfClose) await conn.closeWrite();
    const buffer = new Uint8Array(8192);
    let answer = "";
    while (!answer.includes("\r\n\r\n")) {
      const read = await conn.read(buffer);
      if (read === null) break;
      answer += new TextDecoder().decode(buffer.subarray(0, read));
    }
    return answer;
  } finally {
    conn.close();
  }
}

Deno.test("a body cut short answers 400, and a body too slow answers 408 with one connection: close, whether its length was declared or chunked", async () => {
  const service = await startService({
    BODY_TIMEOUT_MS: "500",
    LATENCY_SCALE: "0",
  });
  const declared = "Content-Length: 1000\r\n";
  const chunked = "Transfer-Encoding: chunked\r\n";
  const cutDeclared = await rawPost(service.port, declared, '{"a":', {
    halfClose: true,
  });
  assert.match(cutDeclared, /^HTTP\/1\.1 400 /, cutDeclared);
  assert.match(cutDeclared, /application\/problem\+json/);
  const cutChunked = await rawPost(service.port, chunked, '5\r\n{"a":\r\n', {
    halfClose: true,
  });
  assert.match(cutChunked, /^HTTP\/1\.1 400 /, cutChunked);
  for (
    const [headers, body] of [[declared, '{"a":'], [
      chunked,
      '5\r\n{"a":\r\n',
    ]] as const
  ) {
    const slow = await rawPost(service.port, headers, body, {
      halfClose: false,
    });
    assert.match(slow, /^HTTP\/1\.1 408 /, slow);
    assert.equal(slow.match(/^connection: close\r$/gim)?.length, 1, slow);
  }
  assert.ok(
    !service.records.some((record) => record.level === "ERROR"),
    "nothing logged as an error",
  );
  service.kill("SIGTERM");
  assert.equal((await service.status).code, 0);
});
