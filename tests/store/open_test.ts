import assert from "node:assert/strict";
import { helpText, parseConfig } from "../../lib/config.ts";
import { MemoryStore } from "../../lib/store/memory.ts";
import {
  acceptedStores,
  integerIn,
  opened,
  openStore,
  STORE_KINDS,
  type StoreKind,
  type StoreSettings,
} from "../../lib/store/open.ts";
import { storeContract } from "./contract.ts";

const SETTINGS: StoreSettings = {
  maxOrders: 1000,
  sqliteSynchronous: "normal",
  pgPoolSize: 2,
  pgSchema: "order_service",
  pgConnectTimeoutMs: 0,
  instanceId: undefined,
  leaseMs: 5000,
};

/** What the fake kind's `open` was given, by spec. */
const openedWith = new Map<string, unknown>();

/**
 * A new kind of store, as a new backend's file would export it, with a
 * setting of its own: here it keeps its orders in a `MemoryStore`, the
 * point being the wiring.
 */
const fakeKind: StoreKind = {
  name: "fake",
  accepts: "fake:NAME",
  matches: (spec) => spec.startsWith("fake:"),
  shared: false,
  keepsOrders: false,
  redact: (spec) => spec,
  settings: {
    fakeShelves: {
      env: "FAKE_SHELVES",
      defaultValue: 1,
      accepts: "an integer from 1 to 9",
      description: "fake store: shelves to keep orders on",
      parse: integerIn(1, 9),
    },
  },
  open: (spec, settings) => {
    openedWith.set(spec, settings.fakeShelves);
    return Promise.resolve(opened(new MemoryStore(), "fake"));
  },
};

// The one line a new store adds to the table.
const KINDS = [...STORE_KINDS, fakeKind];

storeContract("a kind added by one line in the table", async () => {
  const fake = await openStore("fake:orders", SETTINGS, KINDS);
  const { webhooks } = fake;
  if (!webhooks) throw new Error("a MemoryStore has webhooks");
  return { ...fake, webhooks, dispose: () => fake.store.close() };
});

Deno.test("openStore() opens the kind the spec names and says which; an unknown spec is refused", async () => {
  const fake = await openStore("fake:orders", SETTINGS, KINDS);
  assert.equal(fake.kind, "fake");
  const memory = await openStore("memory", SETTINGS);
  assert.equal(memory.kind, "memory");
  assert.ok(memory.store instanceof MemoryStore);
  assert.equal(memory.instanceId, undefined);
  await Promise.all([fake.store.close(), memory.store.close()]);
  await assert.rejects(openStore("fake:orders", SETTINGS), RangeError);
  assert.equal(
    acceptedStores(KINDS),
    "memory, sqlite:PATH, a postgres:// or postgresql:// URL, or fake:NAME",
  );
});

Deno.test("a store says whether instances share it, as its kind does", async () => {
  for (const spec of ["memory", "fake:orders"]) {
    const store = await openStore(spec, SETTINGS, KINDS);
    assert.equal(
      store.coordination.shared,
      KINDS.find((kind) => kind.matches(spec))!.shared,
    );
    await store.store.close();
  }
});

Deno.test("a kind's own setting is a flag and a variable, listed in --help, checked, and handed to its open, with no line outside its file and the table", async () => {
  const env = (name: string) =>
    ({ STORE: "fake:settings", FAKE_SHELVES: "4" } as Record<string, string>)[
      name
    ];
  const config = parseConfig([], env, KINDS);
  assert.notEqual(config, "help");
  if (config === "help") return;
  const store = await openStore(config.store, config, KINDS);
  assert.equal(openedWith.get("fake:settings"), 4);
  await store.store.close();

  const byFlag = parseConfig(["--fake-shelves=7"], env, KINDS);
  if (byFlag === "help") throw new Error("not help");
  const flagged = await openStore("fake:flag", byFlag, KINDS);
  assert.equal(openedWith.get("fake:flag"), 7);
  await flagged.store.close();

  const defaulted = await openStore("fake:default", {}, KINDS);
  assert.equal(openedWith.get("fake:default"), 1);
  await defaulted.store.close();

  assert.throws(
    () => parseConfig(["--fake-shelves=12"], env, KINDS),
    /Invalid --fake-shelves "12": expected an integer from 1 to 9/,
  );
  assert.match(
    helpText(KINDS),
    /--fake-shelves, FAKE_SHELVES \(default 1\)\n\s+fake store: shelves to keep orders on; an integer from 1 to 9/,
  );
  assert.doesNotMatch(helpText(), /FAKE_SHELVES/);
});
