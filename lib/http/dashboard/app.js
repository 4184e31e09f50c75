// The order-service dashboard: plain browser JavaScript, no build step.
// Data: GET /dashboard/api/summary every 2 s, the /events stream for the
// live feed, the orders API for search, an order's page and cancel. The
// operator's controls (pause, retry) are in operator.js.
// With API keys the key lives in sessionStorage and goes in an
// Authorization header, never in a URL; streams are read with fetch
// because EventSource cannot send that header. An order's page is in
// order_page.js, loaded after this file; the two share the page's globals.
"use strict";

const KEY_STORAGE = "order-service-api-key";
const FEED_LENGTH = 50;
const $ = (id) => document.getElementById(id);

let apiKey = sessionStorage.getItem(KEY_STORAGE) ?? "";
let feedPaused = false;
const feedBuffer = [];
let chart;
let listCursor; // the next page of a status listing
let started = false;
let renderPending = false;

function headers(extra = {}) {
  return apiKey ? { ...extra, authorization: `Bearer ${apiKey}` } : extra;
}

async function api(path, init = {}) {
  const response = await fetch(path, {
    ...init,
    headers: headers(init.headers ?? {}),
  });
  if (response.status === 401) {
    showGate("The API key was refused; enter a valid one.");
    throw new Error("unauthorized");
  }
  return response;
}

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value);
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

/** A button that opens order `id`; `short` shows only its last 10 characters (the full id is its title and label). */
function orderButton(id, short = false) {
  return el("button", {
    class: "link",
    type: "button",
    onclick: () => showOrder(id),
    "aria-label": `Open order ${id}`,
    title: id,
  }, short ? `…${id.slice(-10)}` : id);
}

// The API gives times as ISO strings, the summary as epoch milliseconds.
const ms = (value) => typeof value === "number" ? value : Date.parse(value);
const time = (value) => new Date(ms(value)).toLocaleTimeString();

// ---- API key gate -------------------------------------------------------

function showGate(message) {
  $("dashboard").hidden = true;
  $("key-gate").hidden = false;
  $("key-message").textContent = message;
  $("key-input").focus();
}

$("key-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  apiKey = $("key-input").value.trim();
  sessionStorage.setItem(KEY_STORAGE, apiKey);
  $("key-input").value = "";
  await start();
});

// ---- Now, throughput, failures -------------------------------------------

async function refreshSummary() {
  const response = await api("/dashboard/api/summary");
  if (!response.ok) {
    $("connection").textContent = `summary: HTTP ${response.status}`;
    return;
  }
  const summary = await response.json();
  refreshWebhooks().catch(() => {});
  $("connection").textContent = `updated ${
    time(summary.at)
  } · store: ${summary.store}`;
  showProcessing(summary);
  for (const [status, count] of Object.entries(summary.counts)) {
    const cell = $(`count-${status}`);
    if (cell) cell.textContent = count.toLocaleString();
  }
  const instances = $("instances");
  instances.replaceChildren(
    ...summary.instances.map((instance) =>
      el(
        "tr",
        {},
        el("td", {}, instance.id, instance.self ? " (this one)" : ""),
        el(
          "td",
          { class: "num" },
          instance.heartbeat_at === null ? "—" : `${
            Math.max(
              0,
              Math.round((summary.at - instance.heartbeat_at) / 100) / 10,
            )
          } s ago`,
        ),
        el(
          "td",
          { class: "num" },
          instance.status
            ? `${instance.status.queue_depth} / ${instance.status.queue_capacity}`
            : "—",
        ),
        el(
          "td",
          { class: "num" },
          instance.status
            ? `${instance.status.workers_busy} / ${instance.status.workers_total}`
            : "—",
        ),
        el(
          "td",
          { class: "num" },
          instance.status?.finished
            ? `${instance.status.finished.completed} / ${instance.status.finished.failed} / ${instance.status.finished.cancelled}`
            : "—",
        ),
        el("td", { class: "num" }, instance.status?.refused ?? "—"),
        el("td", {}, instance.status?.accepting === false ? "draining" : "yes"),
      )
    ),
  );
  const { throughput, processing_ms: processing } = summary;
  const series = [
    throughput.created,
    throughput.finished,
    throughput.failed,
    throughput.retried,
    throughput.refused,
    throughput.queue_depth,
  ];
  // From a little before the first second with anything in it (at least
  // the last two minutes), so that a young service's history is not a
  // sliver at the right edge of 15 minutes.
  const firstBusy = Math.min(
    ...series.map((values) => {
      const index = values.findIndex((value) => value > 0);
      return index === -1 ? values.length : index;
    }),
  );
  const from = Math.max(
    0,
    Math.min(firstBusy - 30, throughput.created.length - 120),
  );
  const xs = throughput.created.slice(from).map((_, index) =>
    throughput.start + from + index
  );
  drawChart([xs, ...series.map((values) => values.slice(from))]);
  const last = (series) => series.slice(-10).reduce((a, b) => a + b, 0) / 10;
  $("rate-created").textContent = last(throughput.created).toFixed(1);
  $("rate-finished").textContent = last(throughput.finished).toFixed(1);
  $("rate-refused").textContent = last(throughput.refused).toFixed(1);
  $("refused-total").textContent = summary.refused.toLocaleString();
  $("queued-now").textContent = summary.instances.reduce(
    (sum, instance) => sum + (instance.status?.queue_depth ?? 0),
    0,
  ).toLocaleString();
  $("p50").textContent = processing.p50 === null ? "—" : `${processing.p50} ms`;
  $("p99").textContent = processing.p99 === null ? "—" : `${processing.p99} ms`;
  const failures = $("failures");
  failures.replaceChildren(
    ...summary.recent_failures.slice(0, 10).map((failure) =>
      el(
        "tr",
        {},
        el("td", {}, orderButton(failure.id, true)),
        el("td", { class: "when" }, time(failure.at)),
        el("td", { class: "num" }, failure.attempts),
        el(
          "td",
          {},
          failure.failure_reason ?? "",
          // The earlier attempts' reasons, when there were any.
          ...(failure.attempt_reasons.length
            ? [
              el("br"),
              el(
                "span",
                { class: "muted" },
                `before: ${failure.attempt_reasons.join(" · ")}`,
              ),
            ]
            : []),
        ),
        el("td", {}, retryButton(failure.id)),
      )
    ),
  );
  $("no-failures").hidden = summary.recent_failures.length > 0;
}

function drawChart(data) {
  const box = $("chart");
  // The section's width, not the chart's own (which the canvas sets).
  const widthOf = () => Math.max(240, box.parentElement.clientWidth - 32);
  const width = widthOf();
  if (!chart) {
    const styles = getComputedStyle(document.documentElement);
    const color = (name) => styles.getPropertyValue(name).trim();
    chart = new uPlot(
      {
        width,
        height: 220,
        scales: { x: { time: true } },
        axes: [
          { stroke: color("--muted"), grid: { stroke: color("--line") } },
          {
            stroke: color("--muted"),
            grid: { stroke: color("--line") },
            label: "orders/s",
          },
          {
            scale: "queue",
            side: 1,
            stroke: color("--muted"),
            grid: { show: false },
            label: "queued",
          },
        ],
        series: [
          {},
          { label: "created/s", stroke: color("--accent"), width: 2 },
          { label: "finished/s", stroke: color("--ok"), width: 2 },
          { label: "failed/s", stroke: color("--bad"), width: 2 },
          { label: "retried/s", stroke: color("--accent"), dash: [6, 4] },
          { label: "refused/s (503)", stroke: color("--warn"), width: 2 },
          {
            label: "queued",
            scale: "queue",
            stroke: color("--muted"),
            dash: [2, 3],
          },
        ],
      },
      data,
      box,
    );
    addEventListener(
      "resize",
      () => chart.setSize({ width: widthOf(), height: 220 }),
    );
  } else chart.setData(data);
}

// ---- Streams ---------------------------------------------------------

/**
 * Reads the server-sent events of `path` with fetch (so that the key goes in
 * a header), calling `onEvent({ event, id, data })`; reconnects with
 * Last-Event-ID until `signal` aborts. `onEnd` runs when the server ends
 * the stream on purpose (a finished order); then it does not reconnect.
 */
async function stream(path, signal, onEvent, onEnd) {
  let lastId;
  while (!signal.aborted) {
    try {
      const extra = lastId ? { "last-event-id": lastId } : {};
      const response = await fetch(path, { headers: headers(extra), signal });
      if (response.status === 204) return onEnd?.();
      if (response.status === 401) {
        return showGate("The API key was refused; enter a valid one.");
      }
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const reader = response.body.pipeThrough(new TextDecoderStream())
        .getReader();
      let buffered = "";
      while (true) {
        const { value, done } = await reader.read();
        if (done) break;
        buffered += value;
        let end;
        while ((end = buffered.indexOf("\n\n")) !== -1) {
          const block = buffered.slice(0, end);
          buffered = buffered.slice(end + 2);
          const message = { event: "message", id: undefined, data: "" };
          for (const line of block.split("\n")) {
            const colon = line.indexOf(":");
            if (colon <= 0) continue; // comments (heartbeats) start with ":"
            const field = line.slice(0, colon);
            const text = line.slice(colon + 1).replace(/^ /, "");
            if (field === "event") message.event = text;
            else if (field === "id") message.id = lastId = text;
            else if (field === "data") message.data += text;
          }
          if (message.data) onEvent(message);
        }
      }
      if (onEnd) return onEnd();
    } catch (error) {
      if (signal.aborted) return;
      $("connection").textContent =
        `stream interrupted (${error.message}); reconnecting`;
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

function onFeedEvent(message) {
  if (message.event === "reset") return;
  const order = JSON.parse(message.data);
  feedBuffer.unshift({ name: message.event, order, at: Date.now() });
  feedBuffer.length = Math.min(feedBuffer.length, FEED_LENGTH);
  // At most one render per frame, however fast events come.
  if (!feedPaused && !renderPending) {
    renderPending = true;
    requestAnimationFrame(() => {
      renderPending = false;
      if (!feedPaused) renderFeed();
    });
  }
}

function renderFeed() {
  $("feed").replaceChildren(
    ...feedBuffer.map(({ name, order, at }) =>
      el(
        "li",
        {},
        el("time", {}, time(at)),
        el("span", {}, name),
        orderButton(order.id),
        el("span", { class: `status-${order.status}` }, order.status),
      )
    ),
  );
}

$("pause").addEventListener("click", () => {
  feedPaused = !feedPaused;
  $("pause").textContent = feedPaused ? "Resume" : "Pause";
  $("pause").setAttribute("aria-pressed", String(feedPaused));
  if (!feedPaused) renderFeed();
});

// ---- Find an order ---------------------------------------------------

$("search-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const query = $("search-input").value.trim().toUpperCase();
  if (!query) return;
  if (/^ORD-[0-9A-Z]{26}$/.test(query)) return showOrder(query);
  const response = await api(
    `/dashboard/api/orders?prefix=${encodeURIComponent(query)}&limit=20`,
  );
  if (!response.ok) {
    const problem = await response.json().catch(() => ({}));
    return showResults([], problem.detail ?? `HTTP ${response.status}`);
  }
  const orders = await response.json();
  if (orders.length === 1) return showOrder(orders[0].id);
  showResults(orders, orders.length ? "" : "No order has that id or prefix.");
});

$("list-form").addEventListener("submit", (event) => {
  event.preventDefault();
  listCursor = undefined;
  listPage();
});

$("next-page").addEventListener("click", () => listPage());

async function listPage() {
  const params = new URLSearchParams({ limit: "20" });
  const given = (id) => $(id).value.trim();
  if (given("list-status")) params.set("status", given("list-status"));
  if (given("list-customer")) params.set("customer_id", given("list-customer"));
  if (given("list-restaurant")) {
    params.set("restaurant_id", given("list-restaurant"));
  }
  // A datetime-local field is the browser's local time, without an offset:
  // Date reads it as local time, and the API is sent the instant.
  if (given("list-after")) {
    params.set("created_after", new Date(given("list-after")).toISOString());
  }
  if (given("list-before")) {
    params.set("created_before", new Date(given("list-before")).toISOString());
  }
  if (listCursor) params.set("cursor", listCursor);
  const response = await api(`/orders?${params}`);
  if (!response.ok) {
    const problem = await response.json().catch(() => ({}));
    $("next-page").hidden = true;
    return showResults([], problem.detail ?? `HTTP ${response.status}`);
  }
  const orders = await response.json();
  const next = /<([^>]+)>; rel="next"/.exec(response.headers.get("link") ?? "");
  listCursor = next
    ? new URL(next[1], location.href).searchParams.get("cursor")
    : undefined;
  $("next-page").hidden = !listCursor;
  showResults(orders, orders.length ? "" : "No orders match.");
}

function showResults(orders, message) {
  $("results-message").textContent = message;
  $("results").replaceChildren(
    ...orders.map((order) =>
      el(
        "tr",
        {},
        el("td", {}, orderButton(order.id)),
        el("td", { class: `status-${order.status}` }, order.status),
        el("td", {}, order.customer_id),
        el("td", {}, order.restaurant_id),
        el("td", { class: "when" }, time(order.created_at)),
        el("td", { class: "num" }, order.attempts),
      )
    ),
  );
}

// ---- Start -----------------------------------------------------------

async function start() {
  const probe = await fetch("/dashboard/api/summary", { headers: headers() });
  if (probe.status === 401) {
    return showGate(
      apiKey
        ? "The API key was refused; enter a valid one."
        : "This service needs an API key.",
    );
  }
  $("key-gate").hidden = true;
  $("dashboard").hidden = false;
  if (started) return;
  started = true;
  await refreshSummary();
  setInterval(() => refreshSummary().catch(() => {}), 2000);
  stream("/events", new AbortController().signal, onFeedEvent);
}

start();
