/**
 * The SQLite store as `STORE=sqlite:PATH` names it.
 *
 * @module
 */

import { SqliteStore, type SqliteSynchronous } from "./sqlite.ts";
import { opened, storeKind } from "./store_kind.ts";

/**
 * Orders in one SQLite file, which one process opens; its isolates
 * (`PARALLEL`) all open it, and each works the orders it owns.
 */
export const SQLITE_KIND = storeKind({
  name: "sqlite",
  accepts: "sqlite:PATH",
  matches: (spec) => /^sqlite:.+/.test(spec),
  shared: false,
  keepsOrders: true,
  isolates: "owners",
  redact: (spec) => spec,
  settings: {
    sqliteSynchronous: {
      env: "SQLITE_SYNCHRONOUS",
      defaultValue: "full" as SqliteSynchronous,
      accepts: "full or normal",
      description:
        "SQLite store: full survives power loss; normal survives a process crash only",
      parse: (raw: string): SqliteSynchronous | undefined =>
        raw === "full" || raw === "normal" ? raw : undefined,
    },
  },
  open: (spec, settings, context) =>
    Promise.resolve(opened(
      new SqliteStore(spec.slice("sqlite:".length), {
        synchronous: settings.sqliteSynchronous,
        shard: context.shard,
      }),
      "sqlite",
    )),
});
