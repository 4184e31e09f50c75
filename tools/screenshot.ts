/**
 * `deno task screenshot`: regenerates `docs/dashboard.png`, docs/operations.md's
 * picture of the dashboard under load. It starts the service with short
 * steps and some failures, posts orders for a while, opens /dashboard in
 * Debian's Chromium (playwright-core) at 1280 px, and saves the page. Not
 * run by CI: the picture changes with every run.
 *
 * @module
 */

import { launchChromium } from "../tests/e2e/browser.ts";
import { postOrder } from "../tests/e2e/load.ts";
import { startService } from "../tests/e2e/service_process.ts";

const output = Deno.args[0] ??
  new URL("../docs/dashboard.png", import.meta.url).pathname;
const colorScheme = Deno.env.get("COLOR_SCHEME") === "dark" ? "dark" : "light";

const service = await startService({
  LATENCY_SCALE: "0.05",
  FAILURE_RATE: "0.15",
  MAX_ATTEMPTS: "2",
  WORKERS: "20",
  QUEUE_CAPACITY: "500",
  LOG_LEVEL: "warning",
});
const browser = await launchChromium();
try {
  const page = await browser.newPage({
    viewport: { width: 1280, height: 900 },
    colorScheme,
  });
  await page.goto(`${service.url}/dashboard`);
  await page.waitForSelector("#dashboard:not([hidden])");
  // A rising load for 20 s, so the chart has a shape.
  const until = Date.now() + 20_000;
  while (Date.now() < until) {
    const left = (until - Date.now()) / 1000;
    await Promise.all(
      Array.from(
        { length: Math.ceil(8 - left / 3) },
        () =>
          postOrder(service.url).then((response) => response.body?.cancel()),
      ),
    );
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  await page.waitForTimeout(2500);
  const failed = await page.locator("#failures button").first();
  if (await failed.count()) await failed.click();
  await page.waitForTimeout(500);
  await page.screenshot({ path: output, fullPage: true });
  console.log(`wrote ${output}`);
} finally {
  await browser.close();
  service.kill("SIGTERM");
  await service.status;
}
