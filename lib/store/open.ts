/**
 * The one entry point to the stores: which kinds there are, how `STORE`
 * names each, and opening the one it names. A new kind of store is one new
 * file and one line in {@linkcode STORE_KINDS}; nothing outside this folder
 * names a store.
 *
 * @module
 */

import type {
  Coordination,
  OrderRepository,
  OrderStore,
} from "../orders/order_store.ts";
import { MemoryStore } from "./memory.ts";
import { isPostgresUrl, PostgresStore, redactUrl } from "./postgres.ts";
import { SqliteStore } from "./sqlite.ts";

export { isInstanceId, isSchemaName } from "./postgres_connection.ts";

/** The settings a store may read (each kind reads its own). */
export interface StoreSettings {
  /** Memory store: orders kept before the oldest finished are evicted. */
  maxOrders: number;
  /** SQLite store: `full` survives power loss, `normal` a process crash. */
  sqliteSynchronous: "full" | "normal";
  /** PostgreSQL store: connections in the pool. */
  pgPoolSize: number;
  /** PostgreSQL store: the schema holding its tables. */
  pgSchema: string;
  /** PostgreSQL store: how long start-up waits for the database. */
  pgConnectTimeoutMs: number;
  /** PostgreSQL store: this instance's id (generated when absent). */
  instanceId: string | undefined;
  /** PostgreSQL store: the lease, in milliseconds. */
  leaseMs: number;
}

/** An opened store: its two ports, and what the service shows of it. */
export interface OpenedStore {
  /** Where the orders live. */
  store: OrderRepository;
  /** How the instances sharing the store divide its orders. */
  coordination: Coordination;
  /** The kind's name (`memory`, `sqlite`, `postgres` …), as the dashboard shows it. */
  kind: string;
  /** This instance's id, where several instances share the store. */
  instanceId?: string;
}

/** One kind of store. */
export interface StoreKind {
  /** Its name, as the dashboard and logs show it. */
  name: string;
  /** What `STORE` accepts for it, for messages and `--help`. */
  accepts: string;
  /** Whether `spec` names a store of this kind. */
  matches(spec: string): boolean;
  /** Whether several processes can share one store of this kind. */
  shared: boolean;
  /** `spec` as it may be logged (a password hidden). */
  redact(spec: string): string;
  /** Opens the store `spec` names. */
  open(spec: string, settings: StoreSettings): Promise<OpenedStore>;
}

/** The kinds of store, in the order `STORE`'s help lists them. */
export const STORE_KINDS: readonly StoreKind[] = [
  {
    name: "memory",
    accepts: "memory",
    matches: (spec) => spec === "memory",
    shared: false,
    redact: (spec) => spec,
    open: (_spec, settings) =>
      Promise.resolve(
        opened(new MemoryStore({ maxOrders: settings.maxOrders }), "memory"),
      ),
  },
  {
    name: "sqlite",
    accepts: "sqlite:PATH",
    matches: (spec) => /^sqlite:.+/.test(spec),
    shared: false,
    redact: (spec) => spec,
    open: (spec, settings) =>
      Promise.resolve(opened(
        new SqliteStore(spec.slice("sqlite:".length), {
          synchronous: settings.sqliteSynchronous,
        }),
        "sqlite",
      )),
  },
  {
    name: "postgres",
    accepts: "a postgres:// or postgresql:// URL",
    matches: isPostgresUrl,
    shared: true,
    redact: redactUrl,
    open: async (spec, settings) => {
      const store = await PostgresStore.open(spec, {
        poolSize: settings.pgPoolSize,
        schema: settings.pgSchema,
        connectTimeoutMs: settings.pgConnectTimeoutMs,
        leaseMs: settings.leaseMs,
        ...(settings.instanceId !== undefined
          ? { instanceId: settings.instanceId }
          : {}),
      });
      return { ...opened(store, "postgres"), instanceId: store.instanceId };
    },
  },
];

/** `store`'s two ports, apart, as a kind's `open` returns them. */
export function opened(store: OrderStore, kind: string): OpenedStore {
  return { store, coordination: store.coordination, kind };
}

/** The kind of store `spec` names, if any. */
export function storeKindOf(
  spec: string,
  kinds: readonly StoreKind[] = STORE_KINDS,
): StoreKind | undefined {
  return kinds.find((kind) => kind.matches(spec));
}

/** What `STORE` accepts, every kind's form. */
export function acceptedStores(
  kinds: readonly StoreKind[] = STORE_KINDS,
): string {
  const forms = kinds.map((kind) => kind.accepts);
  return forms.length < 2
    ? forms.join("")
    : `${forms.slice(0, -1).join(", ")}, or ${forms.at(-1)}`;
}

/**
 * Opens the store `spec` names.
 *
 * @throws {StoreOpenError} when the store cannot be opened.
 * @throws {RangeError} when no kind of store has that name.
 */
export async function openStore(
  spec: string,
  settings: StoreSettings,
  kinds: readonly StoreKind[] = STORE_KINDS,
): Promise<OpenedStore> {
  const kind = storeKindOf(spec, kinds);
  if (kind === undefined) {
    throw new RangeError(`Cannot open store: unknown kind "${spec}"`);
  }
  return await kind.open(spec, settings);
}
