/**
 * `deno task screenshot`: regenerates docs/operations.md's pictures of the
 * dashboard, in Debian's Chromium (playwright-core) at 1280 px. Not run by
 * CI: the pictures change with every run.
 *
 * - `deno task screenshot` → `docs/dashboard.png`: the service under a
 *   rising load, with some failures, and one failed order opened.
 * - `deno task screenshot incident` → `docs/dashboard-incident.png`: an
 *   incident worked from the dashboard. Half the orders fail (a provider
 *   down) under a steady load; processing is paused, so the queue fills and
 *   POSTs are refused; the failures are retried in bulk from the failures
 *   table; the picture is taken then, before processing resumes.
 *
 * @module
 */

import { launchChromium } from "../tests/e2e/browser.ts";
import { postOrder } from "../tests/e2e/load.ts";
import { startService } from "../tests/e2e/service_process.ts";

const incident = Deno.args[0] === "incident";
const output = new URL(
  incident ? "../docs/dashboard-incident.png" : "../docs/dashboard.png",
  import.meta.url,
).pathname;
const colorScheme = Deno.env.get("COLOR_SCHEME") === "dark" ? "dark" : "light";

const service = await startService({
  LATENCY_SCALE: "0.05",
  FAILURE_RATE: incident ? "0.5" : "0.15",
  MAX_ATTEMPTS: incident ? "1" : "2",
  WORKERS: "20",
  QUEUE_CAPACITY: incident ? "150" : "500",
  LOG_LEVEL: "warning",
});

/** Posts `perTick(secondsLeft)` orders every 100 ms for `seconds`. */
async function load(seconds: number, perTick: (left: number) => number) {
  const until = Date.now() + seconds * 1000;
  while (Date.now() < until) {
    const left = (until - Date.now()) / 1000;
    await Promise.all(
      Array.from(
        { length: perTick(left) },
        () =>
          postOrder(service.url).then((response) => response.body?.cancel()),
      ),
    );
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const browser = await launchChromium();
try {
  const page = await browser.newPage({
    viewport: { width: 1280, height: 900 },
    colorScheme,
  });
  await page.goto(`${service.url}/dashboard`);
  await page.waitForSelector("#dashboard:not([hidden])");
  if (!incident) {
    // A rising load for 20 s, so the chart has a shape.
    await load(20, (left) => Math.ceil(8 - left / 3));
    await page.waitForTimeout(2500);
    const failed = await page.locator("#failures button").first();
    if (await failed.count()) await failed.click();
  } else {
    // Every confirm of the page is accepted, as the operator would.
    page.on("dialog", (dialog) => dialog.accept());
    await load(20, () => 3);
    await page.click("#processing-toggle");
    // Paused: the queue fills, and then the POSTs are refused.
    await load(15, () => 3);
    await page.fill("#bulk-restaurant", "r_456");
    await page.click("#bulk-retry-form button[type=submit]");
    await page.waitForFunction(() =>
      // deno-lint-ignore no-explicit-any
      ((globalThis as any).document.getElementById("retry-result")
        .textContent as string).startsWith("Retried")
    );
    await page.waitForTimeout(2500);
  }
  await page.waitForTimeout(500);
  await page.screenshot({ path: output, fullPage: true });
  console.log(`wrote ${output}`);
} finally {
  await browser.close();
  service.kill("SIGTERM");
  await service.status;
}
