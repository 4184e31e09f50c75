// The dashboard's page for one order: its fields and timeline, kept live by
// the order's own event stream, and its cancel and retry buttons. Loaded after app.js,
// whose helpers ($, el, api, stream, time, ms) it uses.
"use strict";

let openOrder; // { id, controller, shownEntries }

// Called from app.js (search, links): the two scripts share the page's globals.
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
    $("retry").hidden = true;
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
  $("retry").hidden = order.status !== "failed";
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
      : entry.type === "retried"
      ? `retried by hand after attempt ${entry.attempt} failed: ${entry.reason}`
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

/**
 * Asks to confirm `action` ("cancel", "retry") of the open order, POSTs it,
 * and says what happened in words: `words` by status, else `failed` with
 * the status. Resolves the answer and its body, or undefined if not sent.
 */
async function act(action, words, failed) {
  const id = openOrder?.id;
  const verb = action[0].toUpperCase() + action.slice(1);
  if (!id || !confirm(`${verb} order ${id}?`)) return undefined;
  const response = await api(
    `/orders/${encodeURIComponent(id)}/${action}`,
    { method: "POST" },
  );
  const body = await response.json().catch(() => ({}));
  const said = words(body)[response.status] ??
    `${failed}: HTTP ${response.status}.`;
  return { id, response, body, said };
}

$("cancel").addEventListener("click", async () => {
  const done = await act("cancel", (body) => ({
    200: "Cancelled.",
    202: "Cancel requested: the order stops at its next step boundary.",
    409: `Not cancelled: ${body.detail ?? "the order has already finished"}.`,
    404: "Not cancelled: no such order.",
  }), "Not cancelled");
  if (!done) return;
  $("cancel-result").textContent = done.said;
  if (done.response.ok) showNewer(done.body);
});

$("retry").addEventListener("click", async () => {
  const done = await act("retry", (body) => ({
    200: "Retried: pending again, it runs from the step that failed.",
    409: `Not retried: ${body.detail ?? "the order is not failed"}.`,
    404: "Not retried: no such order.",
  }), "Not retried");
  if (!done) return;
  // Its stream ended with the failure: open the order again to follow it.
  if (done.response.ok) await showOrder(done.id);
  $("cancel-result").textContent = done.said;
});

$("close-order").addEventListener("click", () => {
  openOrder?.controller.abort();
  openOrder = undefined;
  $("order").hidden = true;
});
