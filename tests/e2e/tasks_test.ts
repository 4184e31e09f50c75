/**
 * The README's commands as a supervisor runs them: `deno task start` and
 * `deno task dev` each stop when the process the supervisor started gets
 * SIGTERM, and leave nothing running.
 */

import assert from "node:assert/strict";

import { passEnv, readLogRecords } from "./service_process.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

/** Runs `deno task NAME` on a free port; resolves once it listens. */
async function startTask(name: string, env: Record<string, string> = {}) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["task", name],
    cwd: ROOT,
    env: {
      PORT: "0",
      HOST: "127.0.0.1",
      LOG_LEVEL: "info",
      NO_COLOR: "1",
      ...passEnv(),
      ...env,
    },
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const { records, listening, done } = readLogRecords(child.stdout);
  const { port } = await listening;
  return { child, port, records, done: done.then(() => child.status) };
}

async function portIsClosed(port: number): Promise<boolean> {
  try {
    (await Deno.connect({ hostname: "127.0.0.1", port })).close();
    return false;
  } catch {
    return true;
  }
}

async function within<T>(ms: number, promise: Promise<T>, what: string) {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${what} took over ${ms} ms`)),
      ms,
    );
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

// In CI's second pass with two isolates (TEST_PARALLEL=2), whose main
// isolate takes the signal for both.
Deno.test(
  "SIGTERM to `deno task start` drains, logs the summary and exits 0, leaving nothing listening",
  async () => {
    const task = await startTask("start");
    task.child.kill("SIGTERM");
    const status = await within(15_000, task.done, "the drain");
    assert.equal(status.code, 0);
    assert.equal(task.records.at(-1)?.event, "summary");
    assert.equal(
      task.records.filter((record) => record.event === "summary").length,
      1,
      "one summary for the process",
    );
    assert.ok(await portIsClosed(task.port), "the server is gone");
  },
);

Deno.test("SIGTERM to `deno task dev` drains and stops it instead of waiting for a file change", async () => {
  const task = await startTask("dev");
  task.child.kill("SIGTERM");
  const status = await within(15_000, task.done, "stopping");
  assert.equal(status.code, 0);
  assert.equal(task.records.at(-1)?.event, "summary");
  assert.ok(await portIsClosed(task.port), "the server is gone");
});

Deno.test("`deno task dev` restarts the service, drained, when a source file changes", async () => {
  const task = await startTask("dev");
  const touched = `${ROOT}lib/dev_watch_probe_${crypto.randomUUID()}.ts`;
  try {
    await Deno.writeTextFile(touched, "export {};\n");
    const restarted = async () => {
      while (task.records.filter((r) => r.message === "Listening").length < 2) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    };
    await within(15_000, restarted(), "the restart");
    const summaries = task.records.filter((r) => r.event === "summary");
    assert.equal(
      summaries.length,
      1,
      "the first run drained before the restart",
    );
  } finally {
    await Deno.remove(touched).catch(() => {});
    task.child.kill("SIGTERM");
    await within(15_000, task.done, "stopping");
  }
});

Deno.test("`deno task start -- --help` prints the help text and exits 0", async () => {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["task", "start", "--", "--help"],
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdin: "null",
  }).output();
  assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
  assert.match(new TextDecoder().decode(output.stdout), /^Usage: /m);
});
