/**
 * Headless Chromium for the browser tests: Debian's `chromium` package
 * (a browser download by playwright cannot work here), driven by
 * playwright-core.
 */

import assert from "node:assert/strict";
import { chromium } from "../deps.ts";

/** Where the browser is (CHROMIUM_PATH, or Debian's). */
export const CHROMIUM = Deno.env.get("CHROMIUM_PATH") ?? "/usr/bin/chromium";

const hasChromium = await Deno.stat(CHROMIUM).then(() => true, () => false);

/**
 * Whether the browser tests must be skipped: only when there is no browser
 * and the run does not require one. CI sets REQUIRE_BROWSER=1 (and installs
 * Debian's chromium), so there a missing browser fails instead.
 */
export function skipBrowserTests(what: string): boolean {
  const skip = !hasChromium && Deno.env.get("REQUIRE_BROWSER") !== "1";
  if (skip) {
    console.warn(
      `Skipping the ${what} browser test: no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`,
    );
  }
  return skip;
}

/** Starts headless Chromium with nothing that reaches the network on its own. */
export function launchChromium() {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

/** Fails when the page asked any host but `origin` (data: URLs aside). */
export function assertOnlyFrom(requested: readonly string[], origin: string) {
  const foreign = requested.filter((url) =>
    !url.startsWith(origin) && !url.startsWith("data:")
  );
  assert.deepEqual(foreign, [], "the page asked another host");
}
