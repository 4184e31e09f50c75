// The order-service dashboard: plain browser JavaScript, no build step.
// Data: GET /dashboard/api/summary every 2 s, the /events stream for the
// live feed, the orders API for search, an order's page and cancel.
// With API keys the key lives in sessionStorage and goes in an
// Authorization header, never in a URL; streams are read with fetch
// because EventSource cannot send that header.
"use strict";

const KEY_STORAGE = "order-service-api-key";
const FEED_LENGTH = 50;
const $ = (id) => document.getElementById(id);

let apiKey = sessionStorage.getItem(KEY_STORAGE) ?? "";
let feedPaused = false;
const feedBuffer = [];
let chart;
let openOrder; // { id, controller }
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
  $("connection").textContent = `updated ${
    time(summary.at)
  } · store: ${summary.store}`;
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
        el("td", {}, instance.status?.accepting === false ? "draining" : "yes"),
      )
    ),
  );
  const { throughput, processing_ms: processing } = summary;
  const xs = throughput.created.map((_, index) => throughput.start + index);
  const data = [xs, throughput.created, throughput.finished, throughput.failed];
  drawChart(data);
  const last = (series) => series.slice(-10).reduce((a, b) => a + b, 0) / 10;
  $("rate-created").textContent = last(throughput.created).toFixed(1);
  $("rate-finished").textContent = last(throughput.finished).toFixed(1);
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
        ],
        series: [
          {},
          { label: "created/s", stroke: color("--accent"), width: 2 },
          { label: "finished/s", stroke: color("--ok"), width: 2 },
          { label: "failed/s", stroke: color("--bad"), width: 2 },
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
  const status = $("list-status").value;
  const params = new URLSearchParams({ limit: "20" });
  if (status) params.set("status", status);
  if (listCursor) params.set("cursor", listCursor);
  const response = await api(`/orders?${params}`);
  const orders = await response.json();
  const next = /<([^>]+)>; rel="next"/.exec(response.headers.get("link") ?? "");
  listCursor = next
    ? new URL(next[1], location.href).searchParams.get("cursor")
    : undefined;
  $("next-page").hidden = !listCursor;
  showResults(orders, orders.length ? "" : "No orders.");
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
        el("td", { class: "when" }, time(order.created_at)),
        el("td", { class: "num" }, order.attempts),
      )
    ),
  );
}

// ---- An order's page ---------------------------------------------------

async function showOrder(id) {
  openOrder?.controller.abort();
  const controller = new AbortController();
  openOrder = { id, controller };
  $("order").hidden = false;
  $("order-title").textContent = `Order ${id}`;
  $("cancel-result").textContent = "";
  const response = await api(`/orders/${encodeURIComponent(id)}`);
  if (!response.ok) {
    $("order-body").replaceChildren(
      el(
        "p",
        { class: "bad" },
        response.status === 404 ? "No such order." : `HTTP ${response.status}`,
      ),
    );
    $("cancel").hidden = true;
    return;
  }
  showNewer(await response.json());
  $("order").scrollIntoView({ block: "start" });
  $("order-title").focus();
  // Live while it runs: the order's own stream.
  stream(
    `/orders/${encodeURIComponent(id)}/events`,
    controller.signal,
    (message) => {
      if (openOrder?.id === id && message.data) {
        showNewer(JSON.parse(message.data));
      }
    },
    () => {},
  );
}

// The stream and the answers to this page's own requests race: a cancel's
// 202 can arrive after the stream's `cancelled`. An order's timeline only
// grows, so a snapshot with fewer entries than the one shown is older and
// is not drawn over it.
function showNewer(order) {
  if (openOrder?.id !== order.id) return;
  if (order.timeline.length < (openOrder.shownEntries ?? 0)) return;
  openOrder.shownEntries = order.timeline.length;
  renderOrder(order);
}

function renderOrder(order) {
  const finished = ["completed", "failed", "cancelled"].includes(order.status);
  $("cancel").hidden = finished;
  const fields = el("dl", { class: "fields" });
  const field = (name, value) =>
    fields.append(el("dt", {}, name), el("dd", {}, value));
  field(
    "status",
    el(
      "span",
      { class: `status-${order.status}`, id: "order-status" },
      order.status,
    ),
  );
  field("customer", order.customer_id);
  field("restaurant", order.restaurant_id);
  field("items", order.items.join(", "));
  field("attempts", order.attempts);
  field("created", new Date(ms(order.created_at)).toLocaleString());
  field("updated", new Date(ms(order.updated_at)).toLocaleString());
  if (order.failure_reason) field("failure", order.failure_reason);
  if (order.cancel_requested) {
    field("cancel", "requested; it stops at the next step boundary");
  }

  // Each entry's duration is the time since the entry before it: for a
  // step, how long it ran.
  const timeline = order.timeline;
  const took = (index) =>
    index ? ms(timeline[index].at) - ms(timeline[index - 1].at) : 0;
  const longest = Math.max(1, ...timeline.map((_, index) => took(index)));
  const rows = timeline.map((entry, index) => {
    const duration = took(index);
    const what = entry.type === "status"
      ? `status → ${entry.status}`
      : entry.type === "step_finished"
      ? `step ${entry.step} finished (attempt ${entry.attempt})`
      : entry.type === "attempt_failed"
      ? `attempt ${entry.attempt} failed: ${entry.reason}`
      : entry.type === "interrupted"
      ? `attempt ${entry.attempt} interrupted`
      : entry.type.replaceAll("_", " ");
    const bar = el("div", {
      class: "bar",
      role: "img",
      "aria-label": `${duration} ms`,
    });
    bar.style.width = `${Math.round((duration / longest) * 100)}%`;
    return el(
      "tr",
      { class: entry.type === "attempt_failed" ? "bad" : "" },
      el("td", { class: "when" }, time(entry.at)),
      el("td", {}, what),
      el("td", { class: "num" }, index ? `${duration} ms` : ""),
      el(
        "td",
        { class: "bar-cell" },
        entry.type === "step_finished" ? bar : "",
      ),
    );
  });
  const table = el(
    "table",
    { id: "timeline" },
    el(
      "caption",
      { class: "muted" },
      "Timeline: each change, with the time since the one before (a bar per step)",
    ),
    el(
      "thead",
      {},
      el(
        "tr",
        {},
        el("th", {}, "at"),
        el("th", {}, "what"),
        el("th", { class: "num" }, "took"),
        el("th", {}, ""),
      ),
    ),
    el("tbody", {}, ...rows),
  );
  $("order-body").replaceChildren(
    fields,
    el("h3", {}, "Timeline"),
    el("div", { class: "scroll" }, table),
  );
}

$("cancel").addEventListener("click", async () => {
  const id = openOrder?.id;
  if (!id || !confirm(`Cancel order ${id}?`)) return;
  const response = await api(`/orders/${encodeURIComponent(id)}/cancel`, {
    method: "POST",
  });
  const body = await response.json().catch(() => ({}));
  const words = {
    200: "Cancelled.",
    202: "Cancel requested: the order stops at its next step boundary.",
    409: `Not cancelled: ${body.detail ?? "the order has already finished"}.`,
    404: "Not cancelled: no such order.",
  };
  $("cancel-result").textContent = words[response.status] ??
    `Not cancelled: HTTP ${response.status}.`;
  if (response.ok) showNewer(body);
});

$("close-order").addEventListener("click", () => {
  openOrder?.controller.abort();
  openOrder = undefined;
  $("order").hidden = true;
});

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
