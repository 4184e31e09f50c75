import assert from "node:assert/strict";
import { MemoryStore } from "../../lib/store/memory.ts";
import {
  acceptedStores,
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

/**
 * A new kind of store, as a new backend's file would export it: here it
 * keeps its orders in a `MemoryStore`, the point being the wiring.
 */
const fakeKind: StoreKind = {
  name: "fake",
  accepts: "fake:NAME",
  matches: (spec) => spec.startsWith("fake:"),
  shared: false,
  redact: (spec) => spec,
  open: () => Promise.resolve(opened(new MemoryStore(), "fake")),
};

// The one line a new store adds to the table.
const KINDS = [...STORE_KINDS, fakeKind];

storeContract("a kind added by one line in the table", async () => {
  const fake = await openStore("fake:orders", SETTINGS, KINDS);
  return { ...fake, dispose: () => fake.store.close() };
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
