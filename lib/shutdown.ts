/**
 * The graceful drain: stop accepting, finish accepted work, then stop.
 *
 * @module
 */

import type { Logger } from "@logtape/logtape";
import type { OrderEventHub } from "./observe/events.ts";
import type { OrderService } from "./orders/order_service.ts";
import type { OrderStats, OrderSummary } from "./orders/stats.ts";
import type { Coordination } from "./orders/coordination.ts";
import type { OrderRepository } from "./orders/order_store.ts";
import type { WorkerPool } from "./async/worker_pool.ts";
import type { WorkClaimer } from "./orders/work_claimer.ts";
import type { ProcessingPause } from "./orders/processing_pause.ts";

/** What the drain needs. */
export interface DrainOptions {
  service: OrderService;
  pool: WorkerPool<string>;
  server: { shutdown(): Promise<void> };
  /** Closed last. */
  store: Pick<OrderRepository, "close">;
  /** Where a shared store's queued orders are handed back. */
  coordination: Pick<Coordination, "release" | "shared">;
  stats: OrderStats;
  hub: OrderEventHub;
  /** Stopped first, so that nothing more is claimed. */
  claimer?: Pick<WorkClaimer, "stop">;
  /**
   * Stopped once the workers have: messages in flight finish (each within
   * its timeout); those not yet sent stay in a store that keeps them.
   */
  dispatcher?: { stop(): Promise<void> } | undefined;
  retention?: { stop(): Promise<void> } | undefined;
  /** Stopped with the claimer: it reads the instances from the store. */
  sampler?: { stop(): Promise<void> };
  /** While paused, queued orders stay pending in a store that keeps them. */
  pause?: Pick<ProcessingPause, "drain" | "stopWatching">;
  /** Whether the store keeps orders past the process. */
  keepsOrders?: boolean;
  logger: Logger;
  /** How long to wait for accepted orders before aborting them. */
  timeoutMs: number;
  /**
   * Returns the summary without logging it (an isolate's: the main
   * isolate logs the process's).
   */
  quiet?: boolean | undefined;
}

/**
 * Drains the service, in this order: stop claiming, refuse new orders
 * (`/ready` and `POST /orders` answer 503), wait for requests already
 * storing an order, close the queue — with a shared store, hand what is
 * still queued back to the other instances — let the workers finish what
 * is queued or running —
 * aborting running steps after `timeoutMs` — then close the HTTP server and
 * the store. Returns the summary, which is also logged last.
 */
export async function drain(options: DrainOptions): Promise<OrderSummary> {
  const { service, pool, server, store, stats, logger, timeoutMs, hub } =
    options;
  stats.startDrain();
  logger.info("Draining: no longer accepting orders");
  await options.claimer?.stop();
  await options.pause?.stopWatching();
  await options.sampler?.stop();
  await service.stopAccepting();
  if (options.coordination.shared) {
    const queued = service.takeQueued();
    try {
      const handedBack = await options.coordination.release(queued);
      stats.recordHandedBack(handedBack);
      // What release did not find held by this instance had been rescued
      // away from it (it was presumed dead): another instance has it.
      stats.recordLost(queued.length - handedBack);
      logger.info("Handed {handedBack} queued orders back to other instances", {
        handedBack,
      });
    } catch (error) {
      // Closing the store hands them back too, or their lease lapses.
      logger.warning("Could not hand queued orders back: {error}", { error });
    }
  }
  switch (options.pause?.drain(options.keepsOrders ?? false)) {
    case "kept": {
      // Paused for a reason (a provider down): leave the queued orders
      // unstarted in the store, for the next start or another instance.
      const kept = service.takeQueued().length;
      stats.recordKeptPaused(kept);
      logger.warning(
        "Processing is paused: queued orders stay pending in the store, unstarted",
        { kept },
      );
      break;
    }
    case "lifted":
      logger.warning(
        "Processing was paused, but this store keeps no order past the process: processing the queued orders before exiting",
      );
      break;
  }
  logger.info("Queue closed; {queued} orders queued, {busy} in progress", {
    queued: service.queueDepth,
    busy: pool.busy,
  });

  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<true>((resolve) => {
    timer = setTimeout(() => resolve(true), timeoutMs);
  });
  const expired = await Promise.race([pool.done.then(() => false), timedOut]);
  clearTimeout(timer);
  if (expired) {
    logger.warning(
      "Shutdown timeout of {timeoutMs} ms reached; aborting {busy} running orders",
      { timeoutMs, busy: pool.busy },
    );
    await pool.abort(new Error("Shutdown timeout"));
  }
  logger.info("Workers stopped");
  await options.dispatcher?.stop();
  await options.retention?.stop();

  // Event streams would hold the server open: end them first.
  hub.close();
  await server.shutdown();
  logger.info("HTTP server closed");
  await store.close();
  logger.info("Store closed");

  const summary = stats.summary();
  if (!options.quiet) {
    logger.info("Shutdown complete", { event: "summary", ...summary });
  }
  return summary;
}
