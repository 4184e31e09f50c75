/**
 * The docs stay true: every relative link in README.md and docs/ resolves
 * (to a file, and to a heading where it names one), every setting `--help`
 * lists is explained in docs/operations.md and every setting named there
 * exists, and every route of `/openapi.json` is in docs/api.md.
 */

import assert from "node:assert/strict";
import { helpText } from "../lib/config.ts";
import { testSystem } from "./helpers.ts";

const ROOT = new URL("../", import.meta.url);

/** Every Markdown file of the docs: README.md and docs/, recursively. */
function markdownFiles(): string[] {
  const files = ["README.md"];
  const walk = (dir: string) => {
    for (const entry of Deno.readDirSync(new URL(dir, ROOT))) {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory) walk(path);
      else if (entry.name.endsWith(".md")) files.push(path);
    }
  };
  walk("docs");
  return files.sort();
}

function read(path: string): string {
  return Deno.readTextFileSync(new URL(path, ROOT));
}

/** The text outside fenced code blocks, where links and headings live. */
function prose(markdown: string): string {
  return markdown.replace(/^```[\s\S]*?^```/gm, "");
}

/** A heading's anchor as GitHub makes it. */
export function slug(heading: string): string {
  return heading.trim().toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, "")
    .replace(/\s/g, "-");
}

function anchors(markdown: string): Set<string> {
  const found = new Set<string>();
  for (const match of prose(markdown).matchAll(/^#{1,6}\s+(.+)$/gm)) {
    found.add(slug(match[1]!));
  }
  return found;
}

/** `path`'s links that stay in this repository: [target, line]. */
export function relativeLinks(markdown: string): string[] {
  const links: string[] = [];
  const text = prose(markdown).replace(/`[^`\n]*`/g, "");
  for (const match of text.matchAll(/!?\[[^\]]*\]\(([^)\s]+)\)/g)) {
    const target = match[1]!;
    if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto: …
    links.push(target);
  }
  return links;
}

/** Why `target`, linked from `from`, does not resolve; undefined when it does. */
function brokenLink(from: string, target: string): string | undefined {
  const [pathPart, anchor] = target.split("#", 2) as [string, string?];
  const file = pathPart === ""
    ? new URL(from, ROOT)
    : new URL(pathPart, new URL(from, ROOT));
  let info: Deno.FileInfo;
  try {
    info = Deno.statSync(file);
  } catch {
    return `no file ${file.pathname.slice(ROOT.pathname.length)}`;
  }
  if (anchor === undefined || anchor === "") return undefined;
  if (!info.isFile || !file.pathname.endsWith(".md")) {
    return "an anchor into something that is not a Markdown file";
  }
  return anchors(Deno.readTextFileSync(file)).has(anchor)
    ? undefined
    : `no heading #${anchor}`;
}

Deno.test("docs: every relative link in README.md and docs/ resolves, to its heading too", () => {
  const broken: string[] = [];
  let checked = 0;
  for (const file of markdownFiles()) {
    for (const target of relativeLinks(read(file))) {
      checked++;
      const why = brokenLink(file, target);
      if (why) broken.push(`${file}: (${target}): ${why}`);
    }
  }
  assert.deepEqual(broken, []);
  assert.ok(checked > 20, `only ${checked} links found: the scan is broken`);
});

Deno.test("docs: the link check catches a missing file and a missing heading", () => {
  assert.match(brokenLink("README.md", "docs/nowhere.md")!, /no file/);
  assert.match(brokenLink("README.md", "docs/api.md#nowhere")!, /no heading/);
  assert.equal(brokenLink("README.md", "docs/api.md#errors"), undefined);
  assert.deepEqual(
    relativeLinks(
      "[a](x.md) `[b](y.md)` [c](https://e.org)\n```\n[d](z.md)\n```\n",
    ),
    ["x.md"],
  );
  assert.equal(
    slug("`GET /orders/{id}/events` — follow one order"),
    "get-ordersidevents--follow-one-order",
  );
});

/** The variables `--help` lists. */
function helpSettings(): string[] {
  return [...helpText().matchAll(/^ {2}--[a-z0-9-]+, ([A-Z0-9_]+) \(default/gm)]
    .map((match) => match[1]!);
}

/** The variables named in the first column of docs/operations.md's configuration table. */
function documentedSettings(): string[] {
  const operations = read("docs/operations.md");
  const section = operations.slice(operations.indexOf("## Configuration"));
  const table = section.slice(0, section.indexOf("\n## "));
  return [...table.matchAll(/^\| `([A-Z0-9_]+)`/gm)].map((match) => match[1]!);
}

Deno.test("docs: every setting --help lists is in docs/operations.md, and every setting named there exists", () => {
  const help = helpSettings();
  const documented = documentedSettings();
  assert.ok(help.length > 20, `only ${help.length} settings read from --help`);
  assert.deepEqual(
    help.filter((name) => !documented.includes(name)),
    [],
    "settings --help lists that docs/operations.md does not explain",
  );
  assert.deepEqual(
    documented.filter((name) => !help.includes(name)),
    [],
    "settings docs/operations.md names that do not exist",
  );
});

Deno.test("docs: every route of /openapi.json is in docs/api.md", async () => {
  const system = testSystem();
  try {
    const response = await system.app.request("/openapi.json");
    const document = await response.json() as {
      paths: Record<string, Record<string, unknown>>;
    };
    const api = read("docs/api.md");
    const routes = Object.entries(document.paths).flatMap((
      [path, operations],
    ) =>
      Object.keys(operations).map((method) => `${method.toUpperCase()} ${path}`)
    );
    assert.ok(
      routes.length > 10,
      `only ${routes.length} routes in the document`,
    );
    assert.deepEqual(
      routes.filter((route) => !api.includes(`\`${route}\``)),
      [],
      "routes docs/api.md does not name (as `METHOD /path`)",
    );
  } finally {
    await system.store.close();
  }
});
