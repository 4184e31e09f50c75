/**
 * Assembles the service's parts — store, queue, processor, worker pool,
 * HTTP app — from plain options. `main.ts` and the tests build the same
 * system through this one function.
 *
 * @module
 */

import type { Logger } from "@logtape/logtape";
import { Channel } from "./async/channel.ts";
import { OrderEventHub } from "./observe/events.ts";
import { createApp } from "./http/app.ts";
import { ServiceMetrics } from "./observe/metrics.ts";
import { ObservedStore } from "./store/observed.ts";
import type { BodyLimits } from "./http/json_body.ts";
import type { Peers } from "./http/peers.ts";
import { exponentialBackoff } from "./async/backoff.ts";
import { OrderProcessor } from "./orders/order_processor.ts";
import { type FailedFilter, OrderService } from "./orders/order_service.ts";
import { BulkRetry } from "./orders/bulk_retry.ts";
import { WebhookDispatcher } from "./webhooks/dispatcher.ts";
import { WebhookRetention } from "./webhooks/retention.ts";
import { WebhookSender } from "./webhooks/sender.ts";
import type { AddressPolicy } from "./webhooks/address_policy.ts";
import type { WebhookStore } from "./webhooks/webhook_store.ts";
import { toOrderJson } from "./http/order_json.ts";
import { OrderStats } from "./orders/stats.ts";
import { StoreHealth } from "./orders/store_health.ts";
import { createSimulatedSteps, type StepRunner } from "./orders/steps.ts";
import { TurnGate } from "./async/turn_gate.ts";
import { Gate } from "./async/gate.ts";
import { type PauseState, ProcessingPause } from "./orders/processing_pause.ts";
import { MemoryControlRecords } from "./store/memory_control.ts";
import { WorkerPool } from "./async/worker_pool.ts";
import { WorkClaimer } from "./orders/work_claimer.ts";
import { DashboardStats } from "./observe/dashboard_stats.ts";
import { DashboardSampler } from "./observe/dashboard_sampler.ts";
import type {
  ControlRecords,
  Coordination,
  FeedStart,
  InstanceStatus,
  OrderRepository,
} from "./orders/order_store.ts";

/** What {@linkcode createSystem} needs. */
export interface SystemOptions {
  /** Where the orders live. */
  store: OrderRepository;
  /** How the instances sharing `store` divide its orders. */
  coordination: Coordination;
  /** What operators set that outlives a request (default: held in the process). */
  control?: ControlRecords;
  /**
   * Whether the store keeps orders past the process (SQLite, PostgreSQL):
   * then a shutdown while paused leaves queued orders pending in it
   * instead of processing them (default false).
   */
  keepsOrders?: boolean;
  logger: Logger;
  workers: number;
  queueCapacity: number;
  latencyScale: number;
  failureRate: number;
  maxAttempts: number;
  /** Replaces the simulated steps (tests inject their own). */
  runStep?: StepRunner;
  /** Replaces the wait before a refused store write is tried again. */
  storeRetryMs?: (attempt: number) => number;
  /** Replaces the retry backoff (default: 1 s × latencyScale, doubling). */
  backoffMs?: (attempt: number) => number;
  /** Limits on reading a request body (defaults: 64 KiB, 10 s). */
  bodyLimits?: Partial<BodyLimits>;
  /** Requests handled at once before 503 (default 1024). */
  maxInFlight?: number;
  /** API keys; empty or absent leaves the API open. */
  apiKeys?: readonly string[];
  /** Prometheus metrics at /metrics (default on). */
  metrics?: boolean;
  /**
   * Publish order events (default on). Off only to measure what events
   * cost: live streams then stay silent and order metrics stay at zero.
   */
  events?: boolean;
  /** X-Request-Id on every response (default on; off only to measure it). */
  requestIds?: boolean;
  /** Also the process and runtime metrics (main turns this on). */
  processMetrics?: boolean;
  /** Origins allowed by CORS; none by default. */
  corsOrigins?: readonly string[];
  /** Event streams' heartbeat interval (default 15 s). */
  heartbeatMs?: number;
  /** This instance's id, when several share the store. */
  instanceId?: string | undefined;
  /** Between lease heartbeats (default 1 s). */
  leaseHeartbeatMs?: number;
  /** The backstop poll for unclaimed orders (default 1 s). */
  claimPollMs?: number;
  /** The process's other isolates, when it runs several. */
  peers?: Peers | undefined;
  /**
   * The process's other isolates, which an operator's switch must reach
   * too (`PARALLEL`): the first isolate answers it and tells the rest.
   */
  otherIsolates?: OtherIsolates | undefined;
  /**
   * Whether this isolate works order `id`, where the isolates divide the
   * orders (`PARALLEL` on memory or SQLite); absent: every order.
   */
  owns?: ((id: string) => boolean) | undefined;
  /**
   * Webhook endpoints and the outbox, where the store has them; `dispatch`:
   * whether this instance sends them (one isolate does for a shared file).
   */
  webhooks?: {
    store: WebhookStore | undefined;
    policy: AddressPolicy;
    timeoutMs?: number;
    scheduleScale?: number;
    /** How long a delivered message is kept (default 7 days). */
    retentionMs?: number;
    dispatch?: boolean;
  } | undefined;
  /** `memory`, `sqlite` or `postgres`, as the dashboard names it (default memory). */
  storeKind?: string;
}

/** What the first isolate asks of the others when an operator acts. */
export interface OtherIsolates {
  /** Holds every other isolate to `state`. */
  applyPause(state: PauseState): Promise<void>;
  /** Retries the failed orders each other isolate works; how many in all. */
  retryFailed(filter: FailedFilter): Promise<number>;
}

/** The assembled service. */
export interface System {
  /** The store, wrapped so that every change is published to `hub`. */
  store: OrderRepository;
  /**
   * The coordination, as given; `coordination.shared` says whether queued
   * orders are handed back at shutdown instead of processed.
   */
  coordination: Coordination;
  hub: OrderEventHub;
  metrics: ServiceMetrics | undefined;
  queue: Channel<string>;
  stats: OrderStats;
  /** Whether the store takes writes; `/ready` answers 503 while it does not. */
  storeHealth: StoreHealth;
  processor: OrderProcessor;
  service: OrderService;
  pool: WorkerPool<string>;
  /** Keeps the lease, rescues, claims unclaimed orders; not started. */
  claimer: WorkClaimer;
  /** Whether the workers take orders: the operator's pause. */
  pause: ProcessingPause;
  /** The control records the pause and bulk retries keep. */
  control: ControlRecords;
  /** As given: whether the store keeps orders past the process. */
  keepsOrders: boolean;
  /**
   * Resolves once a shared store's change feed publishes to `hub`, with
   * the counts its live changes start from (at once, with none, for the
   * others); rejects when the feed cannot start.
   */
  feedStarted: Promise<FeedStart | undefined>;
  /** The dashboard's figures, fed by the hub once the feed has started. */
  dashboard: DashboardStats;
  /** Samples refusals and queue depth into `dashboard`; not started. */
  sampler: DashboardSampler;
  /** Sends the webhook outbox, where this instance does; not started. */
  dispatcher: WebhookDispatcher | undefined;
  /** Prunes delivered messages, where this instance sends; not started. */
  retention: WebhookRetention | undefined;
  /** This instance's queue, workers and finished orders now. */
  localStatus: () => InstanceStatus;
  app: ReturnType<typeof createApp>;
}

/**
 * Builds the system; the worker pool is created but not started.
 *
 * @example
 * ```ts
 * import { getLogger } from "@logtape/logtape";
 * import { createSystem } from "./system.ts";
 * import { MemoryStore } from "./store/memory.ts";
 * const store = new MemoryStore();
 * const system = createSystem({
 *   store, coordination: store.coordination, logger: getLogger(["order-service"]),
 *   workers: 5, queueCapacity: 100, latencyScale: 0, failureRate: 0, maxAttempts: 3,
 * });
 * system.pool.start();
 * ```
 */
export function createSystem(options: SystemOptions): System {
  const { logger } = options;
  const hub = new OrderEventHub();
  const { coordination } = options;
  const feed = coordination.changeFeed;
  // A shared store reports every instance's changes itself; otherwise the
  // wrapper publishes this process's.
  const store = options.events === false || feed
    ? options.store
    : new ObservedStore(options.store, hub);
  const queue = new Channel<string>({ capacity: options.queueCapacity });
  const stats = new OrderStats();
  const control = options.control ?? new MemoryControlRecords();
  // Workers wait here before they take an order while processing is paused.
  const running = new Gate();
  const pause = new ProcessingPause({
    control,
    gate: running,
    logger: logger.getChild("processing"),
  });
  const storeHealth = new StoreHealth();
  const processor = new OrderProcessor({
    store,
    stats,
    storeHealth,
    storeRetryMs: options.storeRetryMs,
    logger: logger.getChild("worker"),
    runStep: options.runStep ?? createSimulatedSteps({
      latencyScale: options.latencyScale,
      failureRate: options.failureRate,
    }),
    maxAttempts: options.maxAttempts,
    backoffMs: options.backoffMs ??
      exponentialBackoff(1000 * options.latencyScale),
  });
  const service = new OrderService({
    store,
    queue,
    stats,
    processor,
    storeHealth,
    coordination,
  });
  // A worker that waited for an order goes on at the next turn of the
  // event loop, with every worker woken in the same turn, instead of inside
  // the request that queued the order. Orders already waiting in the queue
  // are taken at once: the workers are behind, and going through the gate
  // for each would let them fall further behind. (Measured over HTTP,
  // alternated: more POSTs a second and less CPU per request.)
  const wakeUps = new TurnGate();
  const pool = new WorkerPool<string>({
    receive: async (receiveOptions) => {
      // Paused: take nothing from the queue.
      if (!running.isOpen) await running.wait(receiveOptions.signal);
      let id: string;
      if (queue.size > 0) id = await queue.receive(receiveOptions);
      else {
        id = await queue.receive(receiveOptions);
        await wakeUps.wait();
        // Aborted while it waited for its turn: the pool takes no more jobs
        // once aborted, so this one is left as if still queued (pending).
        receiveOptions.signal.throwIfAborted();
      }
      // Paused while this worker waited for an order: it holds the order,
      // unstarted, until processing resumes. A shutdown that keeps paused
      // orders ends the wait, and the order stays pending in the store.
      if (!running.isOpen) {
        try {
          await running.wait(receiveOptions.signal);
        } catch (error) {
          if (!receiveOptions.signal.aborted) stats.recordKeptPaused();
          throw error;
        }
      }
      return id;
    },
    process: async (id, signal) => {
      if (await processor.process(id, signal) === "lost") stats.recordLost();
    },
    concurrency: options.workers,
    onError: (error, id) =>
      logger.error("Processing order {orderId} failed unexpectedly", {
        orderId: id,
        error,
      }),
    onReceiveError: (error) =>
      logger.error("A worker stopped: the queue failed", { error }),
  });
  const metrics = options.metrics === false ? undefined : new ServiceMetrics({
    gauges: {
      queueDepth: () => queue.size,
      queueCapacity: () => queue.capacity,
      workersBusy: () => pool.busy,
      workersTotal: () => pool.concurrency,
      paused: () => pause.state.paused ? 1 : 0,
      refused: () => stats.refused,
    },
    processMetrics: options.processMetrics ?? false,
  });
  const feedStarted = feed && options.events !== false
    ? feed.start((change) => hub.publishStored(change), 1000)
    : Promise.resolve(undefined);
  const dashboard = new DashboardStats();
  // Counted from the feed's live events only: the history it loads at start
  // is already in the store's counts.
  feedStarted.then(() => {
    hub.addListener((event) => dashboard.observe(event));
    if (!metrics) return;
    // Each instance counts its own changes, so that summing instances
    // counts each change once.
    const self = options.instanceId;
    hub.addListener((event) => {
      if (event.instance === undefined || event.instance === self) {
        metrics.observeOrderEvent(event);
      }
    });
  }, () => {});
  // A cancel asked on any instance aborts the step running here.
  hub.addListener((event) => {
    if (event.name === "cancel_requested") {
      processor.abortRunning(event.order.id);
    }
  });
  const localStatus = (): InstanceStatus => ({
    queue_depth: queue.size,
    queue_capacity: queue.capacity,
    workers_busy: pool.busy,
    workers_total: pool.concurrency,
    accepting: service.accepting,
    paused: pause.state.paused,
    refused: stats.refused,
    finished: (({ completed, failed, cancelled }) => ({
      completed,
      failed,
      cancelled,
    }))(stats.summary()),
  });
  const claimer = new WorkClaimer({
    coordination,
    queue: service,
    logger: logger.getChild("claims"),
    heartbeatMs: options.leaseHeartbeatMs ?? 1000,
    pollMs: options.claimPollMs ?? 1000,
    onClaimed: (count) => stats.recordRecovered(count),
    status: localStatus,
    health: storeHealth,
  });
  const sampler = new DashboardSampler({
    stats: dashboard,
    instances: () => coordination.instances(),
    localStatus,
  });
  const webhookOptions = options.webhooks;
  const webhookStore = webhookOptions?.store;
  const dispatcher = webhookStore && (webhookOptions.dispatch ?? true)
    ? new WebhookDispatcher({
      store: webhookStore,
      sender: new WebhookSender({
        policy: webhookOptions.policy,
        timeoutMs: webhookOptions.timeoutMs,
      }),
      logger: logger.getChild("webhooks"),
      scheduleScale: webhookOptions.scheduleScale,
      render: (delivery) =>
        JSON.stringify({
          type: delivery.type,
          timestamp: new Date(delivery.created_at).toISOString(),
          data: toOrderJson(delivery.order),
        }),
      onAttempt: (outcome, seconds) =>
        metrics?.observeWebhookAttempt(outcome, seconds),
    })
    : undefined;
  if (dispatcher) webhookStore!.onRecorded(() => dispatcher.wake());
  // A shared store's changes, whichever instance made them, reach this one
  // through its change feed after their commit, with their messages
  // written: look for them then rather than at the next poll.
  if (dispatcher && feed) hub.addListener(() => dispatcher.changed());
  // Where this instance sends, it prunes too (on PostgreSQL every instance
  // does: each pass removes what the others left).
  const retention = dispatcher && new WebhookRetention({
    store: webhookStore!,
    retentionMs: webhookOptions?.retentionMs ?? 7 * 24 * 3_600_000,
    logger: logger.getChild("webhooks"),
  });
  const bulkRetry = new BulkRetry({
    control,
    retry: async (filter) => {
      const here = await service.retryFailed(filter, options.owns);
      return here + (await options.otherIsolates?.retryFailed(filter) ?? 0);
    },
  });
  const app = createApp({
    hub,
    bulkRetry,
    metrics,
    corsOrigins: options.corsOrigins,
    heartbeatMs: options.heartbeatMs,
    store,
    coordination,
    service,
    storeHealth,
    logger: logger.getChild("http"),
    bodyLimits: options.bodyLimits,
    maxInFlight: options.maxInFlight,
    apiKeys: options.apiKeys,
    requestIds: options.requestIds,
    peers: options.peers,
    webhooks: {
      store: webhookStore,
      policy: webhookOptions?.policy ??
        { allowHttp: false, allowPrivate: false },
      wake: () => dispatcher?.wake(),
    },
    processing: {
      state: () => pause.state,
      set: async (paused) => {
        const state = await pause.set(paused);
        await options.otherIsolates?.applyPause(state);
        return state;
      },
    },
    dashboard: {
      stats: dashboard,
      localStatus,
      instanceId: options.instanceId,
      storeKind: options.storeKind ?? "memory",
      paused: () => pause.state,
      webhooks: webhookStore,
    },
  });
  return {
    store,
    coordination,
    hub,
    metrics,
    queue,
    stats,
    storeHealth,
    processor,
    service,
    pool,
    claimer,
    pause,
    control,
    keepsOrders: options.keepsOrders ?? false,
    feedStarted,
    dashboard,
    sampler,
    dispatcher,
    retention,
    localStatus,
    app,
  };
}
