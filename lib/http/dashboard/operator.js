// The dashboard's operator controls: pause and resume processing, and put
// failed orders through again, one from the failures table or in bulk.
// Loaded after app.js, whose helpers ($, el, api, time, refreshSummary) it
// uses; app.js calls showProcessing(summary) and retryButton(id).
"use strict";

let processingPaused = false;

// Called from app.js with every summary, and here with a switch's answer.
function showProcessing(summary) {
  processingPaused = summary.paused;
  $("processing-line").classList.toggle("paused", summary.paused);
  $("processing-state").textContent = summary.paused
    ? `Processing is paused${
      summary.paused_since ? ` since ${time(summary.paused_since)}` : ""
    }: workers take no orders; new orders wait in the queue until it is full.`
    : "Processing is running.";
  $("processing-toggle").textContent = summary.paused
    ? "Resume processing"
    : "Pause processing";
}

$("processing-toggle").addEventListener("click", async () => {
  const pausing = !processingPaused;
  const question = pausing
    ? "Pause processing on every instance? Steps already running finish; new orders wait in the queue."
    : "Resume processing on every instance?";
  if (!confirm(question)) return;
  const response = await api(
    `/processing/${pausing ? "pause" : "resume"}`,
    { method: "POST" },
  );
  if (!response.ok) {
    $("processing-state").textContent = `Not ${
      pausing ? "paused" : "resumed"
    }: HTTP ${response.status}.`;
    return;
  }
  const state = await response.json();
  showProcessing({ paused: state.paused, paused_since: state.since });
});

/** The failures table's button that retries order `id`. */
// deno-lint-ignore no-unused-vars -- called from app.js, which shares the page's globals
function retryButton(id) {
  return el("button", {
    type: "button",
    class: "small",
    "aria-label": `Retry order ${id}`,
    onclick: () => retryOne(id),
  }, "Retry");
}

async function retryOne(id) {
  if (!confirm(`Retry order ${id}?`)) return;
  const response = await api(`/orders/${encodeURIComponent(id)}/retry`, {
    method: "POST",
  });
  const body = await response.json().catch(() => ({}));
  $("retry-result").textContent = response.ok
    ? `Retried ${id}: pending again.`
    : `Not retried: ${body.detail ?? `HTTP ${response.status}`}.`;
  refreshSummary().catch(() => {});
}

// One key per confirmed bulk retry: should the request be sent again (a
// network retry), the service answers as it did and retries nothing more.
function newKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0"))
    .join("");
}

$("bulk-retry-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const given = (id) => $(id).value.trim();
  const filter = {};
  const words = [];
  if (given("bulk-restaurant")) {
    filter.restaurant_id = given("bulk-restaurant");
    words.push(`of restaurant ${filter.restaurant_id}`);
  }
  if (given("bulk-reason")) {
    filter.reason = given("bulk-reason");
    words.push(`whose reason starts "${filter.reason}"`);
  }
  // The browser's local time, sent as the instant.
  if (given("bulk-after")) {
    const after = new Date(given("bulk-after"));
    filter.failed_after = after.toISOString();
    words.push(`failed since ${after.toLocaleString()}`);
  }
  const which = words.length ? words.join(", ") : "(every one)";
  if (!confirm(`Put every failed order ${which} through again?`)) return;
  const response = await api("/orders/retry", {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "idempotency-key": newKey(),
    },
    body: JSON.stringify(filter),
  });
  const body = await response.json().catch(() => ({}));
  $("retry-result").textContent = response.ok
    ? `Retried ${body.retried} failed order${body.retried === 1 ? "" : "s"}.`
    : `Not retried: ${body.detail ?? `HTTP ${response.status}`}.`;
  refreshSummary().catch(() => {});
});

// ---- Webhook endpoints' health ------------------------------------------

// Called from app.js with every summary.
// deno-lint-ignore no-unused-vars -- called from app.js, which shares the page's globals
async function refreshWebhooks() {
  const response = await api("/dashboard/api/webhooks");
  if (!response.ok) return;
  const { available, endpoints } = await response.json();
  $("webhooks-section").hidden = !available;
  $("no-webhooks").hidden = endpoints.length > 0;
  const when = (at) => at === null ? "—" : time(at);
  $("webhooks").replaceChildren(
    ...endpoints.map((endpoint) =>
      el(
        "tr",
        { class: endpoint.enabled ? "" : "muted" },
        el(
          "td",
          {},
          endpoint.url,
          el("br"),
          el(
            "span",
            { class: endpoint.enabled ? "muted" : "bad" },
            endpoint.enabled
              ? endpoint.id
              : `disabled: ${endpoint.disabled_reason ?? ""}`,
          ),
        ),
        el("td", { class: "when" }, when(endpoint.last_success_at)),
        el(
          "td",
          { class: "when" },
          when(endpoint.last_failure_at),
          ...(endpoint.last_error
            ? [el("br"), el("span", { class: "muted" }, endpoint.last_error)]
            : []),
        ),
        el(
          "td",
          { class: "num" },
          `${endpoint.backlog}${endpoint.complete ? "" : "+"}`,
        ),
        el(
          "td",
          { class: endpoint.failures_last_hour > 0 ? "num bad" : "num" },
          endpoint.failures_last_hour,
        ),
      )
    ),
  );
}
