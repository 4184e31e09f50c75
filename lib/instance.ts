/**
 * Starts one instance of the service from a checked configuration: opens
 * its store, recovers what an earlier run left, assembles the system and
 * serves it. The main isolate runs one; with `PARALLEL` above 1 every
 * isolate runs one (`isolate_worker.ts`).
 *
 * @module
 */

import type { Logger } from "@logtape/logtape";
import type { Config } from "./config.ts";
import { isListenError, ResilientServer } from "./http/server.ts";
import type { Peers } from "./http/peers.ts";
import { shardRouter } from "./http/shard_routing.ts";
import type { IsolateMesh } from "./isolate_mesh.ts";
import type { OrderEvent } from "./observe/events.ts";
import type {
  Coordination,
  InstanceInfo,
  InstanceStatus,
  ListOptions,
  ListPage,
  OrderRepository,
} from "./orders/order_store.ts";
import type { Order, OrderStatus } from "./orders/order.ts";
import type { OrderSummary } from "./orders/stats.ts";
import { StoreOpenError, StoreUnavailableError } from "./orders/errors.ts";
import { drain } from "./shutdown.ts";
import { openStore, storeKindOf } from "./store/open.ts";
import { ShardedRepository } from "./store/sharded.ts";
import {
  type RemoteWebhookCall,
  serveWebhookCall,
  ShardedWebhooks,
} from "./store/sharded_webhooks.ts";
import type { OpenedStore } from "./store/store_kind.ts";
import { createSystem, type OtherIsolates, type System } from "./system.ts";
import type { PauseState } from "./orders/processing_pause.ts";
import type { FailedFilter } from "./orders/order_service.ts";
import { shardOfId } from "./orders/order_id.ts";

/** Start-up cannot go on; the message says why. */
export class StartUpError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "StartUpError";
  }
}

/** Where an instance runs, when several share one process. */
export interface IsolatePlace {
  /** From 1. */
  index: number;
  /** How many isolates the process runs. */
  count: number;
  /** What the other isolates say (metrics, readiness). */
  peers: Peers;
  /** The channels to the other isolates. */
  mesh: IsolateMesh;
}

/** What {@linkcode startInstance} needs. */
export interface InstanceOptions {
  config: Config;
  logger: Logger;
  /** Life-cycle records: start-up, listening, the drain. */
  lifecycle: Logger;
  /** Absent in a process that runs one isolate. */
  isolate?: IsolatePlace | undefined;
  /** Called once the instance listens. */
  onListen?: (address: { hostname: string; port: number }) => void;
}

/** A started instance. */
export interface RunningInstance {
  system: System;
  server: ResilientServer;
  /**
   * Drains it: stops taking orders, finishes or hands back what it
   * accepted, closes the server and the store. The summary is logged
   * last unless `quiet` (the main isolate then logs the process's).
   */
  drain(options: { timeoutMs: number; quiet?: boolean }): Promise<OrderSummary>;
}

/**
 * Starts an instance.
 *
 * @throws {StartUpError} when the store cannot be opened, its feed cannot
 * start, or the address cannot be bound.
 */
export async function startInstance(
  options: InstanceOptions,
): Promise<RunningInstance> {
  const { config, logger, lifecycle, isolate } = options;
  const instanceIdOf = (base: string | undefined) =>
    base === undefined || isolate === undefined
      ? base
      : `${base.slice(0, 60)}-${isolate.index}`;
  // Isolates of one process on a store that is not shared divide it: each
  // holds a shard of it (memory), or works the orders it owns in the one
  // file they all read (SQLite). A request that must be answered where
  // its order lives goes to that isolate.
  const kind = storeKindOf(config.store);
  const shard = isolate !== undefined && !kind?.shared
    ? { index: isolate.index - 1, count: isolate.count, mesh: isolate.mesh }
    : undefined;
  const readsHop = kind?.isolates === "shards";
  let opened;
  try {
    opened = await openStore(
      config.store,
      { ...config, instanceId: instanceIdOf(config.instanceId) },
      undefined,
      { shard },
    );
  } catch (error) {
    // A store that cannot be opened: nothing can be promised.
    if (!(error instanceof StoreOpenError)) throw error;
    throw new StartUpError(error.message);
  }
  const store: OrderRepository = shard && readsHop
    ? new ShardedRepository(opened.store, {
      index: shard.index,
      count: shard.count,
      remote: (index) => remoteShard(shard.mesh, index + 1),
    })
    : opened.store;
  const coordination: Coordination = shard
    ? withIsolateRows(opened.coordination, shard.mesh, shard.count)
    : opened.coordination;
  const instanceId = shard ? `isolate-${shard.index + 1}` : opened.instanceId;
  let interrupted = 0;
  try {
    // Before any worker runs: orders a previous process (or, on a shared
    // store, a stopped instance) left mid-processing become pending again.
    interrupted = await coordination.rescue();
  } catch (error) {
    // A store that refuses the recovery's writes (a full disk) can still
    // be read: come up, answer 503 to writes, and let the lease loop try
    // the recovery again until the store takes it.
    if (!(error instanceof StoreUnavailableError)) throw error;
    lifecycle.warning(
      "Cannot recover interrupted orders yet: {reason}; trying again while serving reads",
      { reason: error.message },
    );
  }
  if (interrupted > 0) {
    lifecycle.warning("Recovered interrupted orders", { interrupted });
  }

  // Where the isolates divide the orders, each works those its id marks.
  const owns = shard &&
    ((id: string) => shardOfId(id, shard.count) === shard.index);
  const system = createSystem({
    store,
    coordination,
    control: opened.control,
    keepsOrders: kind?.keepsOrders ?? false,
    webhooks: {
      // Shards each hold part of the orders, and each its own outbox; the
      // endpoints are kept in every one alike.
      store: shard && readsHop && opened.webhooks
        ? new ShardedWebhooks(
          opened.webhooks,
          otherShards(shard.index, shard.count),
          (isolate, call) => shard.mesh.call(isolate, "webhooks", call),
        )
        : opened.webhooks,
      policy: {
        allowHttp: config.webhookAllowHttp,
        allowPrivate: config.webhookAllowPrivate,
      },
      timeoutMs: config.webhookTimeoutMs,
      scheduleScale: config.webhookScheduleScale,
      retentionMs: config.webhookRetentionHours * 3_600_000,
      // Isolates sharing a file: the first sends every isolate's outbox;
      // shards: each sends its own.
      dispatch: readsHop || (shard?.index ?? 0) === 0,
    },
    otherIsolates: shard && otherIsolates(shard.mesh, shard.index, shard.count),
    owns,
    storeKind: opened.kind,
    instanceId,
    logger,
    workers: config.workers,
    queueCapacity: config.queueCapacity,
    latencyScale: config.latencyScale,
    failureRate: config.failureRate,
    maxAttempts: config.maxAttempts,
    bodyLimits: { timeoutMs: config.bodyTimeoutMs },
    maxInFlight: config.maxInFlight,
    apiKeys: config.apiKeys,
    corsOrigins: config.corsOrigins,
    metrics: config.metrics,
    // One set of process figures for the process, not one per isolate.
    processMetrics: config.metrics && (isolate?.index ?? 1) === 1,
    events: config.events,
    requestIds: config.requestIds,
    heartbeatMs: config.sseHeartbeatMs,
    leaseHeartbeatMs: config.leaseMs / 5,
    peers: isolate?.peers,
  });
  try {
    const start = await system.feedStarted;
    // Once, at start; from here the dashboard counts from events. A shared
    // store's feed gives counts that match where its live events begin.
    if (start) system.dashboard.addExisting(start.counts, start.counted);
    // A shard counts its own: every shard starts empty, and the first
    // isolate's figures follow every isolate's changes from there. Isolates
    // sharing a file each count the whole: the first isolate's count is the
    // one shown.
    else system.dashboard.addExisting(await opened.store.countByStatus());
  } catch (error) {
    await store.close().catch(() => {});
    throw new StartUpError(
      `the store did not start its event feed or count: ${error}`,
    );
  }
  if (shard) {
    serveShard(system, shard.mesh, opened, owns!);
    if (shard.index > 0) relayEvents(system, shard.mesh, instanceId!);
  }
  if (opened.instanceId !== undefined) {
    lifecycle.info("Registered as instance {instanceId}", {
      instanceId: opened.instanceId,
      leaseMs: config.leaseMs,
    });
  }
  try {
    // Before any worker runs: an instance that starts while paused (on a
    // shared store, or SQLite after a restart) takes no order.
    await system.pause.sync();
  } catch (error) {
    if (!(error instanceof StoreUnavailableError)) throw error;
    lifecycle.warning("Cannot read whether processing is paused: {reason}", {
      reason: error.message,
    });
  }
  // Other instances' switches reach this one at its next look.
  if (kind?.shared) system.pause.watch(config.leaseMs / 5);
  system.pool.start();
  // Where the dashboard is served: the first isolate serves every isolate's.
  if ((shard?.index ?? 0) === 0) system.sampler.start();
  system.dispatcher?.start();
  system.retention?.start();
  // In the background, as the queue has room: every unclaimed pending order
  // (left by an earlier process, rescued, or handed back by an instance).
  system.claimer.start();

  let server: ResilientServer;
  try {
    const handler = shard
      ? shardRouter({
        index: shard.index,
        count: shard.count,
        // Where every isolate reads the one store, a keyed POST's lookup
        // and create are one transaction there: it needs no hop.
        keysHop: readsHop,
        requestIds: config.requestIds,
        local: (request) => system.app.fetch(request),
        forward: (index, request) => shard.mesh.fetch(index + 1, request),
      })
      : system.app.fetch;
    server = new ResilientServer(handler, {
      port: config.port,
      hostname: config.host,
      idleTimeoutMs: config.idleTimeoutMs,
      // Isolates share the port the main isolate checked.
      sharePort: config.reusePort || isolate !== undefined,
      logger: lifecycle,
      onAcceptFailure: () => system.metrics?.recordAcceptFailure(),
      onListen: (address) => options.onListen?.(address),
    });
  } catch (error) {
    if (!isListenError(error)) throw error;
    await system.claimer.stop();
    await store.close().catch(() => {});
    throw new StartUpError(
      `Cannot listen on ${config.host}:${config.port}: ${error.message}`,
    );
  }
  return {
    system,
    server,
    drain: ({ timeoutMs, quiet }) =>
      drain({
        ...system,
        server,
        logger: lifecycle,
        timeoutMs,
        quiet,
      }),
  };
}

/** Shard `index` (from 1) of another isolate, read by message. */
function remoteShard(mesh: IsolateMesh, index: number) {
  return {
    get: (id: string) =>
      mesh.call(index, "get", id) as Promise<Order | undefined>,
    list: (options: ListOptions) =>
      mesh.call(index, "list", options) as Promise<ListPage>,
    countByStatus: () =>
      mesh.call(index, "count", null) as Promise<Record<OrderStatus, number>>,
  };
}

/** Answers the other isolates: their reads of this shard, and relayed changes. */
function serveShard(
  system: System,
  mesh: IsolateMesh,
  opened: OpenedStore,
  owns: (id: string) => boolean,
): void {
  const shard = opened.store;
  mesh.serve({
    fetch: (request) => system.app.fetch(request),
    call: async (op, argument) => {
      switch (op) {
        case "get":
          return await shard.get(argument as string);
        case "list":
          return await shard.list(argument as ListOptions);
        case "count":
          return await shard.countByStatus();
        case "status":
          return system.localStatus();
        case "pause":
          system.pause.apply(argument as PauseState);
          return null;
        case "retryFailed":
          return await system.service.retryFailed(
            argument as FailedFilter,
            owns,
          );
        case "webhooks":
          if (!opened.webhooks) throw new RangeError("No webhooks here");
          return await serveWebhookCall(
            opened.webhooks,
            argument as RemoteWebhookCall,
            () => system.dispatcher?.wake(),
          );
        case "events":
          for (const event of argument as RelayedEvent[]) {
            system.hub.publishRelayed(event);
          }
          return null;
        default:
          throw new RangeError(`Unknown call "${op}"`);
      }
    },
  });
}

/** The mesh indexes (from 1) of every isolate but shard `index` (from 0). */
function otherShards(index: number, count: number): number[] {
  return Array.from({ length: count }, (_, offset) => offset + 1)
    .filter((other) => other !== index + 1);
}

/** The other isolates of the process, as the first one reaches them. */
function otherIsolates(
  mesh: IsolateMesh,
  index: number,
  count: number,
): OtherIsolates {
  const others = otherShards(index, count);
  return {
    applyPause: async (state) => {
      await Promise.all(
        others.map((other) => mesh.call(other, "pause", state)),
      );
    },
    retryFailed: async (filter) => {
      const counts = await Promise.all(
        others.map((other) => mesh.call(other, "retryFailed", filter)),
      );
      return (counts as number[]).reduce((sum, count) => sum + count, 0);
    },
  };
}

/** A change relayed to the first isolate, which hears every isolate's. */
interface RelayedEvent {
  name: string;
  order: Order;
  instance: string;
}

/**
 * Sends this isolate's changes to the first isolate, which serves every
 * change stream and the dashboard's figures; one message per turn of the
 * event loop, however many changes it made.
 */
function relayEvents(system: System, mesh: IsolateMesh, instance: string) {
  let batch: RelayedEvent[] = [];
  system.hub.addListener((event: OrderEvent) => {
    if (event.instance !== undefined) return; // relayed, not ours
    if (batch.length === 0) {
      setTimeout(() => {
        const sent = batch;
        batch = [];
        // The first isolate gone (shutdown): nobody left to tell.
        mesh.call(1, "events", sent).catch(() => {});
      }, 0);
    }
    batch.push({ name: event.name, order: event.order, instance });
  });
}

/**
 * The coordination of a shard, whose `instances()` lists every isolate of
 * the process with its queue and workers (the dashboard's rows).
 */
function withIsolateRows(
  coordination: Coordination,
  mesh: IsolateMesh,
  count: number,
): Coordination {
  const startedAt = Date.now();
  return {
    shared: coordination.shared,
    changeFeed: coordination.changeFeed,
    claimPending: (limit) => coordination.claimPending(limit),
    release: (ids) => coordination.release(ids),
    offer: (ids) => coordination.offer(ids),
    heartbeat: (status) => coordination.heartbeat(status),
    rescue: () => coordination.rescue(),
    onUnclaimed: (wake) => coordination.onUnclaimed(wake),
    instances: async (): Promise<InstanceInfo[]> => {
      const now = Date.now();
      return await Promise.all(
        Array.from({ length: count }, async (_, offset) => ({
          id: `isolate-${offset + 1}`,
          started_at: startedAt,
          heartbeat_at: now,
          status: await mesh.call(offset + 1, "status", null)
            .catch(() => null) as InstanceStatus | null,
        })),
      );
    },
  };
}
