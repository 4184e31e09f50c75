import assert from "node:assert/strict";
import { EXAMPLE_ORDER } from "../helpers.ts";
import { runToExit, startService } from "./service_process.ts";

async function postOrder(
  url: string,
): Promise<{ status: number; id?: string }> {
  const response = await fetch(`${url}/orders`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(EXAMPLE_ORDER),
  });
  const body = await response.json();
  return { status: response.status, id: body.id };
}

function summaryOf(records: Array<Record<string, unknown>>) {
  const last = records.at(-1);
  assert.equal(last?.event, "summary", "the summary is the last log record");
  return last as unknown as Record<string, number>;
}

Deno.test("the service completes orders, drains on SIGTERM, exits 0 and logs a true summary", async () => {
  const service = await startService({ LATENCY_SCALE: "0.05", WORKERS: "5" });
  const accepted: string[] = [];
  for (let index = 0; index < 20; index++) {
    const { status, id } = await postOrder(service.url);
    assert.equal(status, 201);
    accepted.push(id!);
  }
  // Wait until the workers are mid-way, then ask it to stop.
  while (true) {
    const response = await fetch(
      `${service.url}/orders?status=completed&limit=1`,
    );
    const completed = await response.json();
    if (completed.length > 0) break;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  service.kill("SIGTERM");
  // The signal arrives asynchronously: wait for readiness to drop.
  const readyStatus = () =>
    fetch(`${service.url}/ready`).then(async (response) => {
      await response.body?.cancel();
      return response.status;
    }, () => 0);
  while ((await readyStatus()) === 200) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  // During the drain new orders are refused (or the connection is closed).
  const during = await postOrder(service.url).catch(() => ({ status: 0 }));
  assert.ok(
    during.status === 503 || during.status === 0,
    `got ${during.status}`,
  );

  const status = await service.status;
  assert.equal(status.code, 0, await service.stderr);
  const summary = summaryOf(service.records);
  assert.equal(summary.accepted, 20);
  assert.equal(summary.completed, 20);
  assert.equal(summary.failed, 0);
  assert.equal(summary.cancelled, 0);
  assert.equal(summary.abandoned, 0);
  assert.ok(
    summary.drained! > 0 && summary.drained! < 20,
    `drained ${summary.drained}`,
  );
  const messages = service.records.map((record) => record.message);
  for (
    const step of [
      "Draining: no longer accepting orders",
      "Workers stopped",
      "HTTP server closed",
    ]
  ) {
    assert.ok(messages.includes(step), `missing shutdown step "${step}"`);
  }
});

Deno.test("with a short SHUTDOWN_TIMEOUT_MS the service still exits in time, counting what it abandoned", async () => {
  const service = await startService({
    LATENCY_SCALE: "20", // 30 s and more per order: none can finish
    WORKERS: "2",
    SHUTDOWN_TIMEOUT_MS: "200",
    // Life-cycle records, the summary among them, are logged at any level.
    LOG_LEVEL: "warning",
  });
  for (let index = 0; index < 5; index++) {
    assert.equal((await postOrder(service.url)).status, 201);
  }
  const startedAt = Date.now();
  service.kill("SIGTERM");
  const status = await service.status;
  assert.equal(status.code, 0);
  assert.ok(Date.now() - startedAt < 10_000, "exit is bounded by the timeout");
  const summary = summaryOf(service.records);
  assert.equal(summary.accepted, 5);
  assert.equal(summary.completed, 0);
  assert.equal(summary.abandoned, 5);
});

Deno.test("a second signal during the drain exits at once", async () => {
  const service = await startService({
    LATENCY_SCALE: "20",
    SHUTDOWN_TIMEOUT_MS: "60000",
  });
  assert.equal((await postOrder(service.url)).status, 201);
  service.kill("SIGTERM");
  while (
    !service.records.some((record) =>
      record.message === "Draining: no longer accepting orders"
    )
  ) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  service.kill("SIGTERM");
  const status = await service.status;
  assert.equal(status.code, 1);
  assert.ok(
    service.records.some((record) =>
      record.message === "Second signal: exiting at once"
    ),
  );
});

Deno.test("an invalid setting stops start-up with exit code 2 and names the variable", async () => {
  const { code, stderr } = await runToExit({ WORKERS: "lots" });
  assert.equal(code, 2);
  assert.match(stderr, /WORKERS/);
  assert.match(stderr, /integer from 1/);
});

Deno.test("API keys from API_KEYS_FILE guard the API, and no log line contains a key", async () => {
  const key = "file-key-0123456789abcdef";
  const envKey = "env-key-0123456789abcdef";
  const file = await Deno.makeTempFile();
  try {
    await Deno.writeTextFile(file, `# keys\n${key}\n`);
    const service = await startService({
      API_KEYS_FILE: file,
      API_KEYS: envKey,
    });
    const refused = await fetch(`${service.url}/orders`);
    assert.equal(refused.status, 401);
    await refused.body?.cancel();
    for (const accepted of [key, envKey]) {
      const response = await fetch(`${service.url}/orders`, {
        headers: { authorization: `Bearer ${accepted}` },
      });
      assert.equal(response.status, 200);
      await response.body?.cancel();
    }
    service.kill("SIGTERM");
    await service.status;
    const logs = JSON.stringify(service.records);
    assert.ok(
      !logs.includes(key) && !logs.includes(envKey),
      "a key was logged",
    );
    assert.ok(
      !service.records.some((record) =>
        String(record.message).includes("without API keys")
      ),
    );
  } finally {
    await Deno.remove(file);
  }
});

Deno.test("listening on a non-loopback address without keys logs a warning at start-up", async () => {
  const service = await startService({ HOST: "0.0.0.0" });
  service.kill("SIGTERM");
  await service.status;
  const warning = service.records.find((record) =>
    String(record.message).includes("without API keys")
  );
  assert.equal(warning?.level, "WARN");
});

Deno.test("a bad API key or an unreadable API_KEYS_FILE stops start-up with code 2, without echoing the key", async () => {
  for (
    const env of [{ API_KEYS: "short" }, { API_KEYS_FILE: "/nonexistent/keys" }]
  ) {
    const { code, stderr } = await runToExit(env);
    assert.equal(code, 2);
    assert.match(stderr, /API_KEYS/);
    assert.ok(!stderr.includes('"short"'));
  }
});

Deno.test("SIGTERM ends open event streams, so shutdown is not held up by them", async () => {
  const service = await startService({ LATENCY_SCALE: "0" });
  const stream = await fetch(`${service.url}/events`);
  assert.equal(stream.status, 200);
  const reading = stream.text(); // resolves when the server ends the stream
  const { id } = await postOrder(service.url) as { id: string };
  assert.ok(id);
  service.kill("SIGTERM");
  let timer: ReturnType<typeof setTimeout> | undefined;
  const exited = await Promise.race([
    service.status.then(() => true),
    new Promise<false>((resolve) =>
      timer = setTimeout(() => resolve(false), 10_000)
    ),
  ]);
  clearTimeout(timer);
  if (!exited) {
    service.kill("SIGKILL");
    await service.status;
    await reading.catch(() => {});
    assert.fail("shutdown waited for the open event stream");
  }
  assert.equal((await service.status).code, 0);
  const text = await reading;
  assert.match(text, /event: created/);
});

Deno.test("a port already in use stops start-up with code 2, instead of sharing the port with the process that holds it", async () => {
  const first = await startService();
  try {
    // Without the check the second process would listen (the port is
    // shared for the listener rotation) and split the traffic.
    const outcome = await startService({ PORT: String(first.port) }).then(
      async (second) => {
        second.kill("SIGKILL");
        await second.status;
        return "it listened";
      },
      (error: Error) => error.message,
    );
    assert.match(outcome, /order-service: Cannot listen on 127\.0\.0\.1:\d+/);
    const { code } = await runToExit({ PORT: String(first.port) });
    assert.equal(code, 2);
  } finally {
    first.kill("SIGTERM");
    await first.status;
  }
});
