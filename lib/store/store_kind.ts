/**
 * What a kind of store declares: how `STORE` names it, the settings it
 * reads, and how it opens. Each backend exports one {@linkcode StoreKind};
 * `open.ts` lists them.
 *
 * @module
 */

import type {
  ControlRecords,
  Coordination,
  OrderRepository,
  OrderStore,
} from "../orders/order_store.ts";
import type { WebhookStore } from "../webhooks/webhook_store.ts";

/** One setting a kind of store reads, as a flag and an environment variable. */
export interface StoreSetting<T> {
  /** The environment variable; the flag is its name in kebab case. */
  env: string;
  defaultValue: T;
  /** What it accepts, for messages and `--help`. */
  accepts: string;
  /** What it does, for `--help`; starts with the kind it belongs to. */
  description: string;
  /** The value `raw` stands for, or `undefined` when it is not accepted. */
  parse(raw: string): T | undefined;
}

/** A kind's settings, by the name its `open` reads them under. */
export type StoreSettingsSpec = Record<string, StoreSetting<unknown>>;

/** The values of the settings `S` declares. */
export type SettingValues<S extends StoreSettingsSpec> = {
  [K in keyof S]: S[K] extends StoreSetting<infer T> ? T : never;
};

/** An opened store: its three ports, and what the service shows of it. */
export interface OpenedStore {
  /** Where the orders live. */
  store: OrderRepository;
  /** How the instances sharing the store divide its orders. */
  coordination: Coordination;
  /** What operators set that outlives a request (pause, bulk retry keys). */
  control: ControlRecords;
  /** Webhook endpoints and the outbox; absent where not yet built (PostgreSQL). */
  webhooks?: WebhookStore | undefined;
  /** The kind's name (`memory`, `sqlite`, `postgres` …), as the dashboard shows it. */
  kind: string;
  /** This instance's id, where several instances share the store. */
  instanceId?: string;
}

/** Where a store is opened: alone, or as one shard of several. */
export interface OpenContext {
  /**
   * This process's isolates divide a store that is not shared
   * (`PARALLEL`, as the kind's `isolates` says): this one is `index` (from
   * 0) of `count`, and its order ids say so.
   */
  shard?: { index: number; count: number } | undefined;
}

/** One kind of store. */
export interface StoreKind<S extends StoreSettingsSpec = StoreSettingsSpec> {
  /** Its name, as the dashboard and logs show it. */
  name: string;
  /** What `STORE` accepts for it, for messages and `--help`. */
  accepts: string;
  /** Whether `spec` names a store of this kind. */
  matches(spec: string): boolean;
  /** Whether several processes can share one store of this kind. */
  shared: boolean;
  /**
   * Whether orders outlive the process: then a shutdown while processing
   * is paused leaves queued orders pending in the store.
   */
  keepsOrders: boolean;
  /**
   * How the isolates of one process (`PARALLEL`) divide a store of this
   * kind that is not shared: `shards`, each holds a part of the orders and
   * a read of another's part hops there; `owners`, all open the one store,
   * read it directly, and each works the orders whose ids it owns;
   * `undefined`, they cannot.
   */
  isolates?: "shards" | "owners";
  /** `spec` as it may be logged (a password hidden). */
  redact(spec: string): string;
  /** The settings it reads (none for most). */
  settings: S;
  /** Opens the store `spec` names. */
  open(
    spec: string,
    settings: SettingValues<S>,
    context: OpenContext,
  ): Promise<OpenedStore>;
}

/** A kind, with its settings' types checked against its `open`. */
export function storeKind<S extends StoreSettingsSpec>(
  kind: StoreKind<S>,
): StoreKind<S> {
  return kind;
}

/** `store`'s three ports, apart, as a kind's `open` returns them. */
export function opened(
  store: OrderStore & { webhooks?: WebhookStore },
  kind: string,
): OpenedStore {
  return {
    store,
    coordination: store.coordination,
    control: store.control,
    webhooks: store.webhooks,
    kind,
  };
}

/** Parses a whole number from `min` to `max`. */
export function integerIn(min: number, max: number) {
  return (raw: string): number | undefined => {
    if (!/^[0-9]+$/.test(raw)) return undefined;
    const value = Number(raw);
    return value >= min && value <= max ? value : undefined;
  };
}
