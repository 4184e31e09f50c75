/**
 * The memory store as `STORE=memory` names it.
 *
 * @module
 */

import { createOrderIdFactory } from "../orders/order_id.ts";
import { MemoryStore } from "./memory.ts";
import { integerIn, opened, storeKind } from "./store_kind.ts";

/** Orders in this process's memory, gone when it stops. */
export const MEMORY_KIND = storeKind({
  name: "memory",
  accepts: "memory",
  matches: (spec) => spec === "memory",
  shared: false,
  keepsOrders: false,
  isolates: "shards",
  redact: (spec) => spec,
  settings: {
    maxOrders: {
      env: "MAX_ORDERS",
      defaultValue: 1_000_000,
      accepts: "an integer from 1 to 100000000",
      description:
        "orders kept in memory, in each isolate; the oldest finished are evicted past it",
      parse: integerIn(1, 100_000_000),
    },
  },
  open: (_spec, settings, context) =>
    Promise.resolve(opened(
      new MemoryStore({
        maxOrders: settings.maxOrders,
        // A shard's ids name it, so a request finds its order's isolate.
        ...(context.shard
          ? { newId: createOrderIdFactory({ shard: context.shard.index }) }
          : {}),
      }),
      "memory",
    )),
});
