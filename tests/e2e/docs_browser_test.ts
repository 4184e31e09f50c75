/**
 * The API reference page, as a person sees it: headless Chromium (Debian's
 * `chromium` package, driven by playwright-core) opens /docs on the real
 * service and must render every operation without asking any other host
 * for anything.
 */

import assert from "node:assert/strict";
import { assertOnlyFrom, launchChromium, skipBrowserTests } from "./browser.ts";
import { startService } from "./service_process.ts";

const skip = skipBrowserTests("/docs");

Deno.test({
  ignore: skip,
  name:
    "the /docs page renders in headless Chromium and loads nothing from another host",
  // playwright-core owns the browser process, its pipes and its timers and
  // releases them on browser.close(), after the test body's own checks;
  // Deno's sanitizers cannot see that, so they are off for this test only.
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const service = await startService({ LATENCY_SCALE: "0" });
    const browser = await launchChromium();
    try {
      const page = await browser.newPage();
      const requested: string[] = [];
      page.on("request", (request) => requested.push(request.url()));
      const errors: string[] = [];
      page.on("pageerror", (error) => errors.push(error.message));
      await page.goto(`${service.url}/docs`);
      await page.waitForSelector(".opblock", { timeout: 20_000 });
      const operations = await page.locator(".opblock").count();
      assert.ok(operations >= 10, `only ${operations} operations rendered`);
      assert.match(
        await page.locator(".info .title").innerText(),
        /order-service/,
      );
      // Expanding an operation shows its documented responses.
      await page.locator("#operations-orders-createOrder .opblock-summary")
        .click();
      await page.waitForSelector(
        "#operations-orders-createOrder .responses-table",
      );
      const responses = await page.locator(
        "#operations-orders-createOrder .response-col_status",
      ).allInnerTexts();
      for (const status of ["201", "415", "422", "503"]) {
        assert.ok(
          responses.some((text) => text.trim().startsWith(status)),
          `no ${status} shown`,
        );
      }
      assert.deepEqual(errors, []);
      assertOnlyFrom(requested, service.url);
    } finally {
      await browser.close();
      service.kill("SIGTERM");
      await service.status;
    }
  },
});
