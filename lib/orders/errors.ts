/**
 * Domain errors: conditions a caller is expected to catch. Their mapping to
 * HTTP lives in one place, `lib/http/problem.ts`.
 *
 * @module
 */

import type { OrderStatus } from "./order.ts";

/** No order has the requested id. */
export class OrderNotFoundError extends Error {
  /** Creates the error for `id`. */
  constructor(readonly orderId: string) {
    super(`Order "${orderId}" does not exist`);
    this.name = "OrderNotFoundError";
  }
}

/** A conditional transition found the order in another state. */
export class InvalidTransitionError extends Error {
  /** Creates the error; `actual` is the status the order really has. */
  constructor(
    readonly orderId: string,
    readonly actual: OrderStatus,
    readonly wanted: string,
  ) {
    super(`Cannot ${wanted} order "${orderId}": its status is "${actual}"`);
    this.name = "InvalidTransitionError";
  }
}

/**
 * A worker's change was refused because this instance no longer holds the
 * order's claim: it was presumed dead and another instance rescued the
 * order. The worker must leave the order alone.
 */
export class ClaimLostError extends Error {
  /** Creates the error for order `orderId`. */
  constructor(readonly orderId: string, readonly wanted: string) {
    super(
      `Cannot ${wanted} order "${orderId}": this instance no longer holds its claim`,
    );
    this.name = "ClaimLostError";
  }
}

/** The queue has no room for another order right now. */
export class QueueFullError extends Error {
  /** Creates the error; `retryAfterSeconds` is the hint for clients. */
  constructor(readonly retryAfterSeconds: number) {
    super("The order queue is full; retry later");
    this.name = "QueueFullError";
  }
}

/** The service is draining for shutdown and accepts no new orders. */
export class ServiceDrainingError extends Error {
  /** Creates the error. */
  constructor() {
    super("The service is shutting down and accepts no new orders");
    this.name = "ServiceDrainingError";
  }
}

/** The store is at `MAX_ORDERS` and no finished order can be evicted. */
export class StoreFullError extends Error {
  /** Creates the error for a store limited to `maxOrders`. */
  constructor(readonly maxOrders: number) {
    super(
      `The store holds its maximum of ${maxOrders} orders and none is finished`,
    );
    this.name = "StoreFullError";
  }
}

/** An idempotency key was reused with a different request body. */
export class IdempotencyConflictError extends Error {
  /** Creates the error for `key`, first used by order `orderId`. */
  constructor(readonly key: string, readonly orderId: string) {
    super(
      `Idempotency-Key was already used for order "${orderId}" with a different body`,
    );
    this.name = "IdempotencyConflictError";
  }
}

/** A bulk retry's idempotency key was used before with another filter. */
export class BulkRetryKeyConflictError extends Error {
  /** Creates the error for `key`. */
  constructor(readonly key: string) {
    super(
      "Idempotency-Key was already used for a bulk retry with a different filter",
    );
    this.name = "BulkRetryKeyConflictError";
  }
}

/** A bulk retry with the same idempotency key is running now. */
export class BulkRetryInProgressError extends Error {
  /** Creates the error for `key`. */
  constructor(readonly key: string) {
    super(
      "A bulk retry with this Idempotency-Key is running; repeat the request once it has answered",
    );
    this.name = "BulkRetryInProgressError";
  }
}

/** The store failed to read or write (a full disk, an I/O error). */
export class StoreUnavailableError extends Error {
  /** Creates the error; `reason` is the store's own message. */
  constructor(reason: string) {
    super(`The order store is unavailable: ${reason}`);
    this.name = "StoreUnavailableError";
  }
}

/** A store cannot be opened (a bad path or URL, a newer schema); start-up stops with exit code 2. */
export class StoreOpenError extends Error {
  /** Creates the error; `store` names it ("the SQLite store \"/x.db\""). */
  constructor(store: string, reason: string) {
    super(`Cannot open ${store}: ${reason}`);
    this.name = "StoreOpenError";
  }
}
