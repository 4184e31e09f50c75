/**
 * What a fresh machine downloads: `deno task start` installs every package
 * `deno.json` names and every package in `deno.lock`, so neither may hold a
 * package only the tests use (those live in `tests/deps.ts`, locked in
 * `tests/deno.lock`).
 */

import assert from "node:assert/strict";

const root = new URL("../", import.meta.url);
const read = (path: string) => Deno.readTextFileSync(new URL(path, root));

/** The npm package names `tests/deps.ts` imports. */
function testOnlyPackages(): string[] {
  return [...read("tests/deps.ts").matchAll(/"npm:(@?[^@"]+)@/g)]
    .map((match) => match[1]!);
}

Deno.test("tests/deps.ts names the test-only packages", () => {
  assert.deepEqual(testOnlyPackages().sort(), [
    "eventsource",
    "fast-check",
    "playwright-core",
    "standardwebhooks",
  ]);
});

Deno.test("deno.json and deno.lock hold no package only the tests use, so start does not download them", () => {
  const config = JSON.parse(read("deno.json")) as {
    imports: Record<string, string>;
  };
  const lock = read("deno.lock");
  for (const name of testOnlyPackages()) {
    assert.ok(
      !Object.values(config.imports).some((target) =>
        target.includes(`npm:${name}@`)
      ),
      `${name} in deno.json`,
    );
    assert.ok(!lock.includes(`"${name}@`), `${name} in deno.lock`);
  }
});
