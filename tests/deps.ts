/**
 * The packages only the tests use, pinned here rather than in `deno.json`:
 * Deno installs every package `deno.json` names (and every package in the
 * lockfile) before it runs anything, so naming them there made
 * `deno task start` download a browser driver and a fuzzer on a fresh
 * machine. The test tasks keep their own lockfile, `tests/deno.lock`.
 *
 * @module
 */

export { default as fc } from "npm:fast-check@4.10.2";
export { chromium } from "npm:playwright-core@1.65.1";
export { EventSource } from "npm:eventsource@5.1.5";
export { Webhook } from "npm:standardwebhooks@1.3.0";
