/**
 * Prometheus metrics, with prom-client.
 *
 * @module
 */

import client from "prom-client";
import type { OrderEvent } from "./events.ts";
import { registerProcessMetrics } from "./process_metrics.ts";
import { isTerminal, type TimelineEntry } from "../orders/order.ts";

/** Live values the gauges read when scraped. */
export interface GaugeSources {
  queueDepth: () => number;
  queueCapacity: () => number;
  workersBusy: () => number;
  workersTotal: () => number;
}

/** Options for {@linkcode ServiceMetrics}. */
export interface ServiceMetricsOptions {
  gauges: GaugeSources;
  /** Also the process and runtime metrics (CPU, memory, descriptors, heap). */
  defaultMetrics?: boolean;
}

const SECONDS_BUCKETS = [
  0.001,
  0.005,
  0.01,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
  30,
  60,
];

/**
 * The service's metrics, in a registry of their own (no global state).
 * Order metrics are derived from order events, so every store backend gets
 * them for free.
 */
export class ServiceMetrics {
  /** The registry `/metrics` renders. */
  readonly registry = new client.Registry();
  readonly #ordersCreated: client.Counter;
  readonly #ordersFinished: client.Counter<"status">;
  readonly #processingSeconds: client.Histogram;
  readonly #stepSeconds: client.Histogram<"step">;
  readonly #httpRequests: client.Counter<"method" | "route" | "status">;
  readonly #httpSeconds: client.Histogram<"method" | "route">;
  // Label children by their values: prom-client hashes the labels on every
  // call otherwise, a visible cost per request.
  readonly #httpCounters = new Map<string, client.Counter.Internal>();
  readonly #httpTimers = new Map<
    string,
    client.Histogram.Internal<"method" | "route">
  >();

  /** Creates and registers every metric. */
  constructor(options: ServiceMetricsOptions) {
    const registers = [this.registry];
    this.#ordersCreated = new client.Counter({
      name: "orders_created_total",
      help: "Orders accepted (answered 201).",
      registers,
    });
    this.#ordersFinished = new client.Counter({
      name: "orders_finished_total",
      help: "Orders that reached a terminal status, by status.",
      labelNames: ["status"],
      registers,
    });
    this.#processingSeconds = new client.Histogram({
      name: "order_processing_seconds",
      help: "Time from an order's creation to its terminal status.",
      buckets: SECONDS_BUCKETS,
      registers,
    });
    this.#stepSeconds = new client.Histogram({
      name: "order_step_seconds",
      help: "Duration of each finished processing step.",
      labelNames: ["step"],
      buckets: SECONDS_BUCKETS,
      registers,
    });
    this.#httpRequests = new client.Counter({
      name: "http_requests_total",
      help: "HTTP requests answered, by method, route pattern and status.",
      labelNames: ["method", "route", "status"],
      registers,
    });
    this.#httpSeconds = new client.Histogram({
      name: "http_request_duration_seconds",
      help: "Time to answer an HTTP request, by method and route pattern.",
      labelNames: ["method", "route"],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers,
    });
    const gauge = (name: string, help: string, read: () => number) =>
      new client.Gauge({
        name,
        help,
        registers,
        collect() {
          this.set(read());
        },
      });
    const { gauges } = options;
    gauge("queue_depth", "Order ids waiting in the queue.", gauges.queueDepth);
    gauge("queue_capacity", "The queue's capacity.", gauges.queueCapacity);
    gauge(
      "workers_busy",
      "Workers processing an order now.",
      gauges.workersBusy,
    );
    // Not "workers_total": that suffix means a counter to Prometheus.
    gauge("workers_configured", "Worker loops.", gauges.workersTotal);
    if (options.defaultMetrics) registerProcessMetrics(this.registry);
  }

  /** Updates the order metrics from one order event. */
  observeOrderEvent(event: OrderEvent): void {
    const { order } = event;
    if (event.name === "created") {
      this.#ordersCreated.inc();
      return;
    }
    const timeline: readonly TimelineEntry[] = order.timeline;
    if (event.name === "step_finished") {
      // The step began at the entry before it: the start, or the last step.
      const index = timeline.findLastIndex((entry) =>
        entry.type === "step_finished"
      );
      const finished = timeline[index];
      const before = timeline[index - 1];
      if (finished?.type === "step_finished" && before) {
        this.#stepSeconds.observe(
          { step: finished.step },
          (finished.at - before.at) / 1000,
        );
      }
    } else if (event.name === "status" && isTerminal(order.status)) {
      this.#ordersFinished.inc({ status: order.status });
      this.#processingSeconds.observe(
        (order.updated_at - order.created_at) / 1000,
      );
    }
  }

  /**
   * Counts and times one answered request by its route pattern (never the
   * raw path: label values must stay few).
   */
  recordRequest(
    method: string,
    routePath: string,
    status: number,
    seconds: number,
  ): void {
    const route = routePath === "/*" || routePath === "*"
      ? "unmatched"
      : routePath;
    const key = `${method} ${route}`;
    let timer = this.#httpTimers.get(key);
    if (!timer) {
      timer = this.#httpSeconds.labels(method, route);
      this.#httpTimers.set(key, timer);
    }
    const statusKey = `${key} ${status}`;
    let counter = this.#httpCounters.get(statusKey);
    if (!counter) {
      counter = this.#httpRequests.labels(method, route, String(status));
      this.#httpCounters.set(statusKey, counter);
    }
    counter.inc();
    timer.observe(seconds);
  }

  /** The metrics in Prometheus text format. */
  render(): Promise<string> {
    return this.registry.metrics();
  }

  /** The media type of {@linkcode render}'s output. */
  get contentType(): string {
    return this.registry.contentType;
  }
}
