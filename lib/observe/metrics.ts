/**
 * Prometheus metrics, with prom-client.
 *
 * @module
 */

import client from "prom-client";
import type { OrderEvent } from "./events.ts";
import {
  type CounterCell,
  CounterFamily,
  type HistogramCell,
  HistogramFamily,
} from "./metric_cells.ts";
import { registerProcessMetrics } from "./process_metrics.ts";
import { isTerminal, type TimelineEntry } from "../orders/order.ts";

/** Live values the gauges read when scraped. */
export interface GaugeSources {
  queueDepth: () => number;
  queueCapacity: () => number;
  workersBusy: () => number;
  workersTotal: () => number;
  /** 1 while processing is paused, else 0. */
  paused?: () => number;
  /** New orders refused for a full queue since start (a counter). */
  refused?: () => number;
}

/** Options for {@linkcode ServiceMetrics}. */
export interface ServiceMetricsOptions {
  gauges: GaugeSources;
  /** Also the process and runtime metrics (CPU, memory, descriptors, heap). */
  processMetrics?: boolean;
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
  readonly #ordersCreated: CounterCell;
  readonly #ordersFinished: CounterFamily;
  readonly #processingSeconds: HistogramCell;
  readonly #stepSeconds: HistogramFamily;
  readonly #httpRequests: CounterFamily;
  readonly #httpSeconds: HistogramFamily;
  readonly #acceptFailures: CounterCell;
  readonly #webhookMessages: CounterFamily;
  readonly #webhookSeconds: HistogramCell;
  readonly #webhookDisabled: CounterCell;
  // Cells by their label values, looked up once per label set.
  readonly #httpCounters = new Map<string, CounterCell>();
  readonly #httpTimers = new Map<string, HistogramCell>();
  readonly #finished = new Map<string, CounterCell>();
  readonly #steps = new Map<string, HistogramCell>();

  /** Creates and registers every metric. */
  constructor(options: ServiceMetricsOptions) {
    const registers = [this.registry];
    this.#ordersCreated = new CounterFamily(
      "orders_created_total",
      "Orders accepted (answered 201).",
      [],
    ).registerIn(this.registry).cell();
    this.#ordersFinished = new CounterFamily(
      "orders_finished_total",
      "Orders that reached a terminal status, by status.",
      ["status"],
    ).registerIn(this.registry);
    this.#processingSeconds = new HistogramFamily(
      "order_processing_seconds",
      "Time from an order's creation to its terminal status.",
      [],
      SECONDS_BUCKETS,
    ).registerIn(this.registry).cell();
    this.#stepSeconds = new HistogramFamily(
      "order_step_seconds",
      "Duration of each finished processing step.",
      ["step"],
      SECONDS_BUCKETS,
    ).registerIn(this.registry);
    this.#httpRequests = new CounterFamily(
      "http_requests_total",
      "HTTP requests answered, by method, route pattern and status.",
      ["method", "route", "status"],
    ).registerIn(this.registry);
    this.#httpSeconds = new HistogramFamily(
      "http_request_duration_seconds",
      "Time to answer an HTTP request, by method and route pattern.",
      ["method", "route"],
      [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    ).registerIn(this.registry);
    // Counted here, not read from /proc: descriptor exhaustion can be
    // alerted on however the service was started (process_open_fds needs
    // /proc, which Deno opens only to --allow-all).
    this.#acceptFailures = new CounterFamily(
      "http_accept_failures_total",
      "Times the listener could not accept connections (no file descriptor free) and refused new ones until one was.",
      [],
    ).registerIn(this.registry).cell();
    this.#webhookMessages = new CounterFamily(
      "webhook_attempts_total",
      "Webhook message attempts, by what they came to: delivered, retrying (failed, to be tried again), failed (the last attempt failed) or disabled (a 410).",
      ["outcome"],
    ).registerIn(this.registry);
    this.#webhookSeconds = new HistogramFamily(
      "webhook_attempt_seconds",
      "Time of one webhook attempt, from connecting to the answer read.",
      [],
      SECONDS_BUCKETS,
    ).registerIn(this.registry).cell();
    this.#webhookDisabled = new CounterFamily(
      "webhook_endpoints_disabled_total",
      "Webhook endpoints disabled: a 410 Gone, or every message failed for the disabling window.",
      [],
    ).registerIn(this.registry).cell();
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
    if (gauges.paused) {
      gauge(
        "processing_paused",
        "1 while an operator has paused processing (workers take no orders), else 0.",
        gauges.paused,
      );
    }
    const refused = gauges.refused;
    if (refused) {
      new client.Counter({
        name: "orders_refused_total",
        help: "New orders refused with 503 because the queue was full.",
        registers,
        collect() {
          // The count lives in the service's stats; read when scraped.
          this.reset();
          this.inc(refused());
        },
      });
    }
    if (options.processMetrics) registerProcessMetrics(this.registry);
  }

  /** Counts one webhook attempt (or a disabling, with no time). */
  observeWebhookAttempt(
    outcome: "delivered" | "retrying" | "failed" | "disabled",
    seconds: number,
  ): void {
    if (outcome === "disabled") this.#webhookDisabled.inc();
    if (seconds === 0 && outcome === "disabled") return;
    this.#webhookMessages.cell(outcome).inc();
    this.#webhookSeconds.observe(seconds);
  }

  /** Counts one failure of the listener to accept connections. */
  recordAcceptFailure(): void {
    this.#acceptFailures.inc();
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
        let cell = this.#steps.get(finished.step);
        if (!cell) {
          cell = this.#stepSeconds.cell(finished.step);
          this.#steps.set(finished.step, cell);
        }
        cell.observe((finished.at - before.at) / 1000);
      }
    } else if (event.name === "status" && isTerminal(order.status)) {
      let cell = this.#finished.get(order.status);
      if (!cell) {
        cell = this.#ordersFinished.cell(order.status);
        this.#finished.set(order.status, cell);
      }
      cell.inc();
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
    const route = routeLabel(routePath);
    const key = `${method} ${route}`;
    let timer = this.#httpTimers.get(key);
    if (!timer) {
      timer = this.#httpSeconds.cell(method, route);
      this.#httpTimers.set(key, timer);
    }
    const statusKey = `${key} ${status}`;
    let counter = this.#httpCounters.get(statusKey);
    if (!counter) {
      counter = this.#httpRequests.cell(method, route, String(status));
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

/** A route pattern as metrics and traces name it: `unmatched` for none. */
export function routeLabel(routePath: string): string {
  return routePath === "/*" || routePath === "*" ? "unmatched" : routePath;
}
