import assert from "node:assert/strict";
import client from "prom-client";
import {
  CounterFamily,
  HistogramFamily,
} from "../../lib/observe/metric_cells.ts";

Deno.test("a histogram cell renders cumulative buckets, +Inf, sum and count in Prometheus text", async () => {
  const registry = new client.Registry();
  const family = new HistogramFamily("wait_seconds", "Waits.", ["kind"], [
    0.1,
    1,
  ]).registerIn(registry);
  const cell = family.cell("a");
  for (const value of [0.05, 0.1, 0.5, 3]) cell.observe(value);
  const text = await registry.metrics();
  for (
    const line of [
      "# TYPE wait_seconds histogram",
      'wait_seconds_bucket{kind="a",le="0.1"} 2',
      'wait_seconds_bucket{kind="a",le="1"} 3',
      'wait_seconds_bucket{kind="a",le="+Inf"} 4',
      'wait_seconds_sum{kind="a"} 3.65',
      'wait_seconds_count{kind="a"} 4',
    ]
  ) assert.ok(text.split("\n").includes(line), `${line}\n---\n${text}`);
});

Deno.test("counter cells count per label set, and the same labels give the same cell", async () => {
  const registry = new client.Registry();
  const family = new CounterFamily("hits_total", "Hits.", ["route"])
    .registerIn(registry);
  family.cell("/a").inc();
  family.cell("/a").inc(2);
  family.cell("/b").inc();
  const text = await registry.metrics();
  assert.ok(text.includes('hits_total{route="/a"} 3'), text);
  assert.ok(text.includes('hits_total{route="/b"} 1'), text);
});
