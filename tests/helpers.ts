/** Shared test fixtures. */

import { getLogger } from "@logtape/logtape";
import type { NewOrder, Order, OrderStatus } from "../lib/orders/order.ts";
import { StoreUnavailableError } from "../lib/orders/errors.ts";
import { MemoryStore } from "../lib/store/memory.ts";
import {
  createSystem,
  type System,
  type SystemOptions,
} from "../lib/system.ts";
import type { OrderRepository, OrderStore } from "../lib/orders/order_store.ts";

/** The reference service's example order. */
export const EXAMPLE_ORDER: NewOrder = {
  customer_id: "c_12345",
  restaurant_id: "r_456",
  items: ["veggie_burger", "fries"],
};

/**
 * A system with no step delays on `store` (a memory store by default) and
 * its coordination; workers not started.
 *
 * One system in this process: the tests under `tests/http/` drive its Hono
 * app with `app.request()`, below the isolates of `PARALLEL`, whose routing
 * exists only in a running process. So they run once, and
 * `tests/e2e/http_contract_test.ts` checks the same contract against the
 * real process in both of CI's passes, the second with two isolates.
 */
export function testSystem(
  options: Partial<Omit<SystemOptions, "store" | "coordination">> & {
    store?: OrderStore;
  } = {},
): System {
  const store = options.store ?? new MemoryStore();
  return createSystem({
    // An unconfigured LogTape logger discards records.
    logger: getLogger(["order-service-test"]),
    workers: 2,
    queueCapacity: 100,
    latencyScale: 0,
    failureRate: 0,
    maxAttempts: 3,
    backoffMs: () => 0,
    ...options,
    store,
    coordination: store.coordination,
    control: store.control,
  });
}

/** Stops taking orders and waits for the workers to finish the queue. */
export async function drainSystem(system: System): Promise<void> {
  await system.service.stopAccepting();
  if (system.pool.state === "idle") system.pool.start();
  await system.pool.done;
}

/** Waits until the order has one of `statuses` (polling the store). */
export async function waitForStatus(
  store: OrderRepository,
  id: string,
  statuses: readonly OrderStatus[],
  timeoutMs = 5000,
): Promise<Order> {
  const deadline = Date.now() + timeoutMs;
  while (true) {
    const order = await store.get(id);
    if (order && statuses.includes(order.status)) return order;
    if (Date.now() > deadline) {
      throw new Error(
        `Order ${id} is "${order?.status}", not ${statuses.join("/")}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

/**
 * A store that refuses every write with `StoreUnavailableError` while
 * `refusing` is true, as a full disk does; reads still work. Counts the
 * refusals.
 */
export function refusingStore(inner: OrderStore = new MemoryStore()) {
  const control = { refusing: false, refused: 0 };
  const refuse = () => {
    control.refused++;
    return Promise.reject(
      new StoreUnavailableError("database or disk is full"),
    );
  };
  const store: OrderStore = {
    coordination: inner.coordination,
    control: inner.control,
    create: (input, options) =>
      control.refusing ? refuse() : inner.create(input, options),
    transition: (id, change) =>
      control.refusing ? refuse() : inner.transition(id, change),
    get: (id) => inner.get(id),
    getByIdempotencyKey: (key) => inner.getByIdempotencyKey(key),
    list: (options) => inner.list(options),
    countByStatus: () => inner.countByStatus(),
    close: () => inner.close(),
  };
  return { store, control };
}

/** Waits until `condition()` holds, failing after `timeoutMs`. */
export async function waitUntil(
  condition: () => boolean,
  what: string,
  timeoutMs = 5000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}
