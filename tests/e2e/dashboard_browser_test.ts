/**
 * The dashboard as a person uses it: headless Chromium (Debian's
 * `chromium`, driven by playwright-core) on the real service. Orders posted
 * through the API show up in the counts and the feed; an order found by
 * id fills its timeline as it runs; a pending order is cancelled from its
 * page; with API keys nothing shows before a key is entered; an incident
 * worked from the dashboard (pause, refusals seen, retries one and in
 * bulk, resume). No console errors, and no request to another host.
 * (`deno task screenshot incident` takes docs/operations.md's picture of
 * the same incident, under a heavier load.)
 */

import assert from "node:assert/strict";
import { assertOnlyFrom, launchChromium, skipBrowserTests } from "./browser.ts";
import { EXAMPLE_ORDER } from "../helpers.ts";
import { type ServiceProcess, startService } from "./service_process.ts";
import { startReceiver } from "./webhook_receiver.ts";

const skip = skipBrowserTests("dashboard");

// The page's own global, for the functions that run in the browser
// (page.evaluate, waitForFunction); Deno's types have no DOM.
// deno-lint-ignore no-explicit-any
declare const document: any;

type Browser = Awaited<ReturnType<typeof launchChromium>>;
type Page = Awaited<ReturnType<Browser["newPage"]>>;

/** Opens `/dashboard` and records console errors and foreign requests. */
async function withDashboard(
  env: Record<string, string>,
  body: (page: Page, service: ServiceProcess) => Promise<void>,
): Promise<void> {
  const service = await startService(env);
  const browser = await launchChromium();
  try {
    const page = await browser.newPage({
      viewport: { width: 1280, height: 900 },
    });
    const requested: string[] = [];
    page.on("request", (request) => requested.push(request.url()));
    const errors: string[] = [];
    page.on("pageerror", (error) => errors.push(error.message));
    page.on("console", (message) => {
      // A 401 answer to the key probe is what the page expects with keys.
      if (message.type() === "error" && !/401/.test(message.text())) {
        errors.push(message.text());
      }
    });
    await page.goto(`${service.url}/dashboard`);
    await body(page, service);
    assert.deepEqual(errors, [], "no console errors");
    assertOnlyFrom(requested, service.url);
  } finally {
    await browser.close();
    service.kill("SIGTERM");
    await service.status;
  }
}

async function post(url: string, headers: Record<string, string> = {}) {
  const response = await fetch(`${url}/orders`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(EXAMPLE_ORDER),
  });
  assert.equal(response.status, 201);
  return (await response.json()).id as string;
}

/** Opens order `id` by its id and waits until its page shows `status`. */
async function openOrderUntil(page: Page, id: string, status: string) {
  await page.fill("#search-input", id);
  await page.press("#search-input", "Enter");
  await page.waitForFunction(
    (wanted) => document.getElementById("order-status")?.textContent === wanted,
    status,
    { timeout: 10_000 },
  );
}

const count = async (page: Page, status: string) =>
  Number(
    (await page.locator(`#count-${status}`).innerText()).replace(/,/g, ""),
  );

Deno.test({
  ignore: skip,
  name:
    "the dashboard shows new orders in its counts and feed, follows an order found by id as it runs, and cancels a pending order from its page",
  // playwright-core owns the browser process and its pipes and releases
  // them on browser.close(); Deno's sanitizers cannot see that.
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    // One worker and steps of 0.2–0.4 s: the first order runs while the
    // others wait, pending.
    await withDashboard(
      { LATENCY_SCALE: "0.2", WORKERS: "1" },
      async (page, service) => {
        await page.waitForSelector("#dashboard:not([hidden])");
        await page.waitForFunction(() =>
          document.getElementById("count-pending")?.textContent !== "—"
        );
        // Twelve orders of about 0.5 s each on one worker: the last waits
        // several seconds, pending.
        const ids: string[] = [];
        for (let index = 0; index < 12; index++) {
          ids.push(await post(service.url));
        }
        const last = ids.at(-1)!;

        // Counts and the feed change within a few seconds.
        await page.waitForFunction(
          () => {
            const total = ["pending", "processing", "completed"].reduce(
              (sum, status) =>
                sum +
                Number(
                  document.getElementById(`count-${status}`)!.textContent!
                    .replace(/,/g, ""),
                ),
              0,
            );
            return total >= 3;
          },
          undefined,
          { timeout: 5000 },
        );
        await page.waitForFunction(
          (id) => document.getElementById("feed")!.textContent!.includes(id),
          last,
          { timeout: 5000 },
        );

        // Find an order still waiting by id; its timeline fills in as it
        // runs, without a reload.
        const followed = ids[5]!;
        await page.fill("#search-input", followed);
        await page.click("#search-form button[type=submit]");
        await page.waitForFunction(
          (id) =>
            document.getElementById("order-title")!.textContent!.includes(id),
          followed,
        );
        await page.waitForSelector("#timeline");
        const rowsAtFirst = await page.locator("#timeline tbody tr").count();
        assert.ok(
          rowsAtFirst < 5,
          `it had not finished yet (${rowsAtFirst} rows)`,
        );
        await page.waitForFunction(
          () =>
            document.querySelectorAll("#timeline tbody tr").length >= 5 &&
            document.getElementById("order-status")?.textContent ===
              "completed",
          undefined,
          { timeout: 10_000 },
        );
        const steps = await page.locator("#timeline tbody tr", {
          hasText: "finished",
        }).count();
        assert.equal(steps, 3, "a row per finished step");
        assert.equal(
          await page.locator("#timeline .bar").count(),
          3,
          "a bar per step",
        );

        // Cancel the last, still pending, from its page, confirming.
        assert.equal(
          (await (await fetch(`${service.url}/orders/${last}`)).json())
            .status,
          "pending",
        );
        await page.fill("#search-input", last);
        await page.press("#search-input", "Enter"); // the keyboard works too
        await page.waitForFunction(
          (id) =>
            document.getElementById("order-title")!.textContent!.includes(id),
          last,
        );
        page.once("dialog", (dialog) => dialog.accept());
        await page.click("#cancel");
        await page.waitForFunction(() =>
          document.getElementById("cancel-result")!.textContent === "Cancelled."
        );
        assert.equal(
          await page.locator("#order-status").innerText(),
          "cancelled",
        );
        assert.equal(
          (await (await fetch(`${service.url}/orders/${last}`)).json())
            .status,
          "cancelled",
        );
        await page.waitForFunction(
          () =>
            Number(document.getElementById("count-cancelled")!.textContent) ===
              1,
          undefined,
          { timeout: 5000 },
        );
        assert.equal(await count(page, "cancelled"), 1);
        // Every control has a label a screen reader can read.
        const unlabelled = await page.evaluate(() =>
          [...document.querySelectorAll("input, select")].filter((control) =>
            !control.closest("label") && !control.getAttribute("aria-label")
          ).length
        );
        assert.equal(unlabelled, 0);
        // At a phone's width the page is one column and nothing needs
        // sideways scrolling (a wide table scrolls inside its own box).
        await page.setViewportSize({ width: 390, height: 844 });
        await page.waitForTimeout(100);
        const overflow = await page.evaluate(() =>
          document.documentElement.scrollWidth -
          document.documentElement.clientWidth
        );
        assert.ok(overflow <= 0, `the page is ${overflow} px too wide`);
      },
    );
  },
});

Deno.test({
  ignore: skip,
  name:
    "with API keys the dashboard shows nothing before a key is entered, refuses a wrong one, and works with a right one",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const key = "browser-test-key-0123456789abcdef";
    await withDashboard(
      { API_KEYS: key, LATENCY_SCALE: "0" },
      async (page, service) => {
        await page.waitForSelector("#key-gate:not([hidden])");
        assert.equal(await page.locator("#dashboard").isHidden(), true);
        assert.equal(
          await page.locator("#count-pending").innerText().catch(() => "—"),
          "—",
        );
        await page.fill("#key-input", "wrong-key-wrong-key-wrong-key");
        await page.click("#key-form button[type=submit]");
        await page.waitForFunction(() =>
          /refused/.test(document.getElementById("key-message")!.textContent!)
        );
        assert.equal(await page.locator("#dashboard").isHidden(), true);
        await post(service.url, { authorization: `Bearer ${key}` });
        await page.fill("#key-input", key);
        await page.click("#key-form button[type=submit]");
        await page.waitForSelector("#dashboard:not([hidden])");
        await page.waitForFunction(
          () =>
            Number(document.getElementById("count-completed")?.textContent) >=
              1 ||
            Number(document.getElementById("count-pending")?.textContent) >= 1,
          undefined,
          { timeout: 5000 },
        );
        // The key is in sessionStorage, never in a URL.
        const urls: string[] = await page.evaluate(() =>
          performance.getEntriesByType("resource").map((entry) => entry.name)
        );
        assert.ok(urls.every((url) => !url.includes(key)));
        assert.equal(
          await page.evaluate(() =>
            sessionStorage.getItem("order-service-api-key")
          ),
          key,
        );
      },
    );
  },
});

Deno.test({
  ignore: skip,
  name:
    "cancelling a processing order from its page: an answer that arrives after the stream's `cancelled` does not put the page back to processing",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    // Steps of about 5 s: the order is processing when the cancel comes,
    // and the cancel aborts the running step at once.
    await withDashboard(
      { LATENCY_SCALE: "5", WORKERS: "1" },
      async (page, service) => {
        await page.waitForSelector("#dashboard:not([hidden])");
        const id = await post(service.url);
        await openOrderUntil(page, id, "processing");
        // The 202 is held back until the stream has shown `cancelled`: the
        // order in which the race went wrong, made certain.
        await page.route("**/cancel", async (route) => {
          const response = await route.fetch();
          await page.waitForFunction(
            () =>
              document.getElementById("order-status")?.textContent ===
                "cancelled",
            undefined,
            { timeout: 10_000 },
          );
          await route.fulfill({ response });
        });
        page.once("dialog", (dialog) => dialog.accept());
        await page.click("#cancel");
        await page.waitForFunction(() =>
          document.getElementById("cancel-result")!.textContent!.startsWith(
            "Cancel requested",
          )
        );
        assert.equal(
          await page.locator("#order-status").innerText(),
          "cancelled",
        );
        assert.equal(await page.locator("#cancel").isHidden(), true);
      },
    );
  },
});

Deno.test({
  ignore: skip,
  name:
    "finding orders on the dashboard: by restaurant, then narrowed by customer and a creation time range the browser gives in local time",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await withDashboard({ LATENCY_SCALE: "0" }, async (page, service) => {
      await page.waitForSelector("#dashboard:not([hidden])");
      const made: Array<{ id: string; customer_id: string }> = [];
      for (let index = 0; index < 7; index++) {
        const response = await fetch(`${service.url}/orders`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({
            ...EXAMPLE_ORDER,
            restaurant_id: index < 5 ? "r_searched" : "r_elsewhere",
            customer_id: index % 2 === 0 ? "c_even" : "c_odd",
          }),
        });
        assert.equal(response.status, 201);
        made.push(await response.json());
      }
      const resultIds = () =>
        page.evaluate(() =>
          [...document.querySelectorAll("#results tr")].map((row: {
            textContent: string;
          }) => /ORD-[0-9A-Z]{26}/.exec(row.textContent)?.[0])
        );
      const rowsBecome = (count: number) =>
        page.waitForFunction(
          (n) => document.querySelectorAll("#results tr").length === n,
          count,
          { timeout: 5000 },
        );

      await page.fill("#list-restaurant", "r_searched");
      await page.click("#list-form button[type=submit]");
      await rowsBecome(5);
      assert.deepEqual(await resultIds(), made.slice(0, 5).map((o) => o.id));

      await page.fill("#list-customer", "c_odd");
      await page.click("#list-form button[type=submit]");
      await rowsBecome(2);
      assert.deepEqual(await resultIds(), [made[1]!.id, made[3]!.id]);

      // A range that ended before the orders were made finds none.
      await page.fill("#list-customer", "");
      await page.fill("#list-after", "2020-01-01T00:00:00");
      await page.fill("#list-before", "2020-01-02T00:00:00");
      await page.click("#list-form button[type=submit]");
      await page.waitForFunction(() =>
        document.getElementById("results-message")!.textContent ===
          "No orders match."
      );
      assert.equal(await page.locator("#results tr").count(), 0);
      // From then on, with no end: all five again.
      await page.fill("#list-before", "");
      await page.click("#list-form button[type=submit]");
      await rowsBecome(5);
      assert.deepEqual(await resultIds(), made.slice(0, 5).map((o) => o.id));
    });
  },
});

Deno.test({
  ignore: skip,
  name:
    "retrying a failed order from its page, after a confirm: it runs again, and its timeline shows the retry with the failure it ended",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    // Every attempt fails: the order fails, and fails again once retried.
    await withDashboard(
      { LATENCY_SCALE: "0", FAILURE_RATE: "1", MAX_ATTEMPTS: "1" },
      async (page, service) => {
        await page.waitForSelector("#dashboard:not([hidden])");
        const id = await post(service.url);
        await openOrderUntil(page, id, "failed");
        assert.equal(await page.locator("#cancel").isHidden(), true);
        let asked = "";
        page.once("dialog", (dialog) => {
          asked = dialog.message();
          dialog.accept();
        });
        await page.click("#retry");
        await page.waitForFunction(() =>
          document.getElementById("cancel-result")!.textContent!.startsWith(
            "Retried",
          )
        );
        assert.equal(asked, `Retry order ${id}?`);
        // Followed live again: it runs, and fails a second time.
        await page.waitForFunction(
          () =>
            document.getElementById("order-status")?.textContent ===
              "failed" &&
            document.getElementById("order-body")!.textContent!.includes(
              "retried by hand",
            ),
          undefined,
          { timeout: 10_000 },
        );
        const order = await (await fetch(`${service.url}/orders/${id}`))
          .json();
        assert.deepEqual(
          order.timeline.map((entry: { type: string; status?: string }) =>
            entry.status ?? entry.type
          ),
          // One attempt each time: its failure is the order's.
          [
            "pending",
            "processing",
            "failed",
            "retried",
            "pending",
            "processing",
            "failed",
          ],
        );
      },
    );
  },
});

/** Accepts the next confirm dialog and resolves with its question. */
function confirmNext(page: Page): Promise<string> {
  return new Promise((resolve) => {
    page.once("dialog", (dialog) => {
      resolve(dialog.message());
      dialog.accept();
    });
  });
}

Deno.test({
  ignore: skip,
  name:
    "an incident on the dashboard: retry one order from the failures table, pause after a confirm, see the 503s counted, retry the failures in bulk, resume",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    // The payment provider is down: every attempt fails.
    await withDashboard(
      {
        LATENCY_SCALE: "0",
        FAILURE_RATE: "1",
        MAX_ATTEMPTS: "1",
        QUEUE_CAPACITY: "5",
        // Idle workers each hold the next order, unstarted, while paused.
        WORKERS: "2",
      },
      async (page, service) => {
        await page.waitForSelector("#dashboard:not([hidden])");
        const ids = [];
        for (let index = 0; index < 6; index++) {
          ids.push(await post(service.url));
        }
        const failureRows = (n: number) =>
          page.waitForFunction(
            (wanted) =>
              document.querySelectorAll("#failures tr").length === wanted,
            n,
            { timeout: 10_000 },
          );
        await failureRows(6);

        // One, from its row.
        const question = confirmNext(page);
        await page.locator("#failures tr button", { hasText: "Retry" }).first()
          .click();
        assert.match(await question, /^Retry order ORD-[0-9A-Z]{26}\?$/);
        await page.waitForFunction(() =>
          document.getElementById("retry-result")!.textContent!.startsWith(
            "Retried ORD-",
          )
        );

        // Pause, after a confirm; the page says so on the next summary.
        const pauseQuestion = confirmNext(page);
        await page.click("#processing-toggle");
        assert.match(
          await pauseQuestion,
          /^Pause processing on every instance/,
        );
        await page.waitForFunction(() =>
          document.getElementById("processing-state")!.textContent!
            .startsWith("Processing is paused")
        );
        assert.equal(
          await page.locator("#processing-toggle").innerText(),
          "Resume processing",
        );
        // The failed one retried before the pause has failed again by now.
        await failureRows(6);

        // While paused the queue fills: POSTs are refused, and counted.
        let refused = 0;
        for (let index = 0; index < 10; index++) {
          const response = await fetch(`${service.url}/orders`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify(EXAMPLE_ORDER),
          });
          await response.body?.cancel();
          if (response.status === 503) refused++;
        }
        assert.ok(refused > 0, "the full queue refused some");
        await page.waitForFunction(
          (n) =>
            document.getElementById("refused-total")!.textContent === String(n),
          refused,
          { timeout: 5000 },
        );

        // Every failure of this restaurant, in bulk, after a confirm.
        await page.fill("#bulk-restaurant", EXAMPLE_ORDER.restaurant_id);
        const bulkQuestion = confirmNext(page);
        await page.click("#bulk-retry-form button[type=submit]");
        assert.equal(
          await bulkQuestion,
          `Put every failed order of restaurant ${EXAMPLE_ORDER.restaurant_id} through again?`,
        );
        await page.waitForFunction(() =>
          document.getElementById("retry-result")!.textContent ===
            "Retried 6 failed orders."
        );
        // Retried orders leave the failures table; paused, none runs.
        await failureRows(0);
        await page.waitForFunction(() =>
          Number(document.getElementById("count-failed")!.textContent) === 0
        );
        for (const id of ids) {
          const order = await (await fetch(`${service.url}/orders/${id}`))
            .json();
          assert.equal(order.status, "pending", id);
        }

        // Resume, after a confirm: they run (and, the provider still
        // down, fail again).
        const resumeQuestion = confirmNext(page);
        await page.click("#processing-toggle");
        assert.equal(
          await resumeQuestion,
          "Resume processing on every instance?",
        );
        await page.waitForFunction(() =>
          document.getElementById("processing-state")!.textContent ===
            "Processing is running."
        );
        await page.waitForFunction(
          () =>
            Number(document.getElementById("count-pending")!.textContent) ===
              0 &&
            Number(document.getElementById("count-processing")!.textContent) ===
              0,
          undefined,
          { timeout: 10_000 },
        );
      },
    );
  },
});

Deno.test({
  ignore: skip,
  name:
    "the dashboard's webhook panel: a healthy endpoint with its last success, and a failing one with its error and the failures of the last hour",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const healthy = await startReceiver();
    const failing = await startReceiver();
    failing.answer = () => new Response("down", { status: 500 });
    try {
      await withDashboard(
        {
          LATENCY_SCALE: "0",
          WEBHOOK_ALLOW_PRIVATE: "on",
          WEBHOOK_ALLOW_HTTP: "on",
          WEBHOOK_SCHEDULE_SCALE: "0.001",
          // Webhooks on memory need one isolate (CI's second pass runs two).
          PARALLEL: "1",
        },
        async (page, service) => {
          await page.waitForSelector("#dashboard:not([hidden])");
          for (const receiver of [healthy, failing]) {
            const response = await fetch(`${service.url}/webhooks`, {
              method: "POST",
              headers: { "content-type": "application/json" },
              body: JSON.stringify({
                url: receiver.url,
                events: ["order.created"],
              }),
            });
            assert.equal(response.status, 201);
            await response.body?.cancel();
          }
          for (let index = 0; index < 3; index++) await post(service.url);
          await page.waitForSelector("#webhooks-section:not([hidden])");
          await page.waitForFunction(
            (url) => {
              const rows = [...document.querySelectorAll("#webhooks tr")];
              const row = rows.find((r: { textContent: string }) =>
                r.textContent.includes(url)
              ) as {
                textContent: string;
                cells: Array<{ textContent: string }>;
              } | undefined;
              return row !== undefined &&
                row.textContent.includes("the endpoint answered 500") &&
                Number(row.cells[4]!.textContent) >= 3;
            },
            failing.url,
            { timeout: 10_000 },
          );
          const healthyRow = await page.locator("#webhooks tr", {
            hasText: healthy.url,
          }).innerText();
          assert.doesNotMatch(healthyRow, /answered 500/);
          // Delivered: a time in its last-success cell, nothing waiting.
          assert.match(healthyRow, /\d{1,2}:\d{2}:\d{2}/);
        },
      );
    } finally {
      await healthy.close();
      await failing.close();
    }
  },
});
