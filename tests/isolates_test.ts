import assert from "node:assert/strict";
import { getLogger } from "@logtape/logtape";
import { parseConfig } from "../lib/config.ts";
import { isolateCount, IsolateGroup, sumSummaries } from "../lib/isolates.ts";

const FIXTURE = new URL("./fixtures/crashing_isolate.ts", import.meta.url);

function config(port: number) {
  const parsed = parseConfig(
    [],
    (name) =>
      ({ STORE: "postgres://127.0.0.1/x", PARALLEL: "2", PORT: String(port) })[
        name as "STORE"
      ],
  );
  if (parsed === "help") throw new Error("not help");
  return parsed;
}

Deno.test("isolateCount(): a number as given; auto is DENO_JOBS when set, else one per core", () => {
  const env = (jobs?: string) => (name: string) =>
    name === "DENO_JOBS" ? jobs : undefined;
  assert.equal(isolateCount(3, env("8"), 2), 3);
  assert.equal(isolateCount("auto", env(), 6), 6);
  assert.equal(isolateCount("auto", env("4"), 6), 4);
  assert.equal(isolateCount("auto", env("zero"), 2), 2);
});

Deno.test("PARALLEL reads an integer from 1 to 64 or auto, and nothing else", () => {
  const parse = (value: string) =>
    parseConfig(
      [`--parallel=${value}`],
      (name) => name === "STORE" ? "postgres://127.0.0.1/x" : undefined,
    );
  assert.equal((parse("auto") as { parallel: unknown }).parallel, "auto");
  assert.equal((parse("4") as { parallel: unknown }).parallel, 4);
  for (const bad of ["0", "65", "two", "1.5"]) {
    assert.throws(() => parse(bad), /Invalid --parallel/);
  }
});

Deno.test("sumSummaries() adds up every field of the isolates' summaries", () => {
  const one = {
    accepted: 3,
    completed: 2,
    failed: 1,
    cancelled: 0,
    recovered: 1,
    handed_back: 1,
    lost: 0,
    drained: 2,
    kept_paused: 1,
    refused: 7,
    abandoned: 0,
  };
  assert.deepEqual(sumSummaries([one, { ...one, lost: 4, accepted: 10 }]), {
    accepted: 13,
    completed: 4,
    failed: 2,
    cancelled: 0,
    recovered: 2,
    handed_back: 2,
    lost: 4,
    drained: 4,
    kept_paused: 2,
    refused: 14,
    abandoned: 0,
  });
});

Deno.test("IsolateGroup: an isolate that dies after start-up is reported, so that the process exits instead of answering for part of itself", async () => {
  const died = Promise.withResolvers<string>();
  const group = new IsolateGroup({
    config: config(1),
    count: 2,
    lifecycle: getLogger(["order-service-test"]),
    workerUrl: FIXTURE,
    onIsolateDeath: (reason) => died.resolve(reason),
  });
  try {
    assert.equal(await group.start(), 4321);
    assert.match(await died.promise, /isolate 1 stopped: .*ran out of luck/);
  } finally {
    group.terminate();
  }
});

Deno.test("IsolateGroup: an isolate that cannot start makes start() fail with its reason", async () => {
  const group = new IsolateGroup({
    config: config(0),
    count: 2,
    lifecycle: getLogger(["order-service-test"]),
    workerUrl: FIXTURE,
    onIsolateDeath: () => {},
  });
  try {
    await assert.rejects(group.start(), /cannot open the store/);
  } finally {
    group.terminate();
  }
});
