/**
 * Counters and histograms whose hot-path update is one array write, for
 * prom-client's registry to render.
 *
 * Why not prom-client's own: its labelled children hash their label values
 * on every `inc()` and `observe()` (`fastHashObject` and the histogram's
 * `observe` were 3.6% of the CPU profile under POST load, the largest
 * single library cost). These cells are looked up once per label set and
 * then only add; prom-client still registers, renders and formats them.
 *
 * @module
 */

import type client from "prom-client";

type Labels = Record<string, string>;

interface MetricValue {
  labels: Labels;
  value: number;
  metricName?: string;
}

/** A metric object prom-client's `Registry.registerMetric` accepts. */
interface RegistrableMetric {
  name: string;
  help: string;
  type: "counter" | "histogram";
  aggregator: "sum";
  get(): Promise<
    {
      name: string;
      help: string;
      type: "counter" | "histogram";
      aggregator: "sum";
      values: MetricValue[];
    }
  >;
  reset(): void;
}

/** One label set's count. */
export class CounterCell {
  /** The count. */
  value = 0;
  /** Adds `by` (default 1). */
  inc(by = 1): void {
    this.value += by;
  }
}

/** One label set's histogram. */
export class HistogramCell {
  readonly #bounds: readonly number[];
  /** Observations per bucket, not cumulative; the last is +Inf. */
  readonly counts: Float64Array;
  /** The sum of every observation. */
  sum = 0;
  /** The number of observations. */
  count = 0;

  /** Creates a cell for `bounds` (ascending upper bounds). */
  constructor(bounds: readonly number[]) {
    this.#bounds = bounds;
    this.counts = new Float64Array(bounds.length + 1);
  }

  /** Records one observation. */
  observe(value: number): void {
    const bounds = this.#bounds;
    let index = 0;
    while (index < bounds.length && value > bounds[index]!) index++;
    this.counts[index]!++;
    this.sum += value;
    this.count++;
  }
}

/** A family of cells by label values, rendered as one metric. */
abstract class Family<Cell> implements RegistrableMetric {
  abstract readonly type: "counter" | "histogram";
  readonly aggregator = "sum" as const;
  readonly #cells = new Map<string, { labels: Labels; cell: Cell }>();

  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
  ) {}

  /** The cell for these label values (in `labelNames` order); keep it. */
  cell(...values: string[]): Cell {
    const key = values.join("\u0000");
    let entry = this.#cells.get(key);
    if (!entry) {
      const labels: Labels = {};
      this.labelNames.forEach((name, index) => labels[name] = values[index]!);
      entry = { labels, cell: this.create() };
      this.#cells.set(key, entry);
    }
    return entry.cell;
  }

  protected abstract create(): Cell;
  protected abstract values(labels: Labels, cell: Cell): MetricValue[];

  get() {
    const values: MetricValue[] = [];
    for (const { labels, cell } of this.#cells.values()) {
      values.push(...this.values(labels, cell));
    }
    return Promise.resolve({
      name: this.name,
      help: this.help,
      type: this.type,
      aggregator: this.aggregator,
      values,
    });
  }

  reset(): void {
    this.#cells.clear();
  }

  /** Adds this family to `registry`. */
  registerIn(registry: client.Registry): this {
    registry.registerMetric(this as unknown as client.Metric);
    return this;
  }
}

/** Counters by label values. */
export class CounterFamily extends Family<CounterCell> {
  readonly type = "counter" as const;
  protected create(): CounterCell {
    return new CounterCell();
  }
  protected values(labels: Labels, cell: CounterCell): MetricValue[] {
    return [{ labels, value: cell.value }];
  }
}

/** Histograms by label values, all with the same buckets. */
export class HistogramFamily extends Family<HistogramCell> {
  readonly type = "histogram" as const;
  readonly #bounds: readonly number[];

  /** Creates the family; `bounds` are the buckets' upper bounds, ascending. */
  constructor(
    name: string,
    help: string,
    labelNames: readonly string[],
    bounds: readonly number[],
  ) {
    super(name, help, labelNames);
    this.#bounds = bounds;
  }

  protected create(): HistogramCell {
    return new HistogramCell(this.#bounds);
  }

  protected values(labels: Labels, cell: HistogramCell): MetricValue[] {
    const values: MetricValue[] = [];
    let cumulative = 0;
    this.#bounds.forEach((bound, index) => {
      cumulative += cell.counts[index]!;
      values.push({
        metricName: `${this.name}_bucket`,
        labels: { ...labels, le: String(bound) },
        value: cumulative,
      });
    });
    values.push({
      metricName: `${this.name}_bucket`,
      labels: { ...labels, le: "+Inf" },
      value: cell.count,
    });
    values.push({ metricName: `${this.name}_sum`, labels, value: cell.sum });
    values.push({
      metricName: `${this.name}_count`,
      labels,
      value: cell.count,
    });
    return values;
  }
}
