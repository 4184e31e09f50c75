/**
 * The layout of `lib/` as a rule: folders form layers, a folder imports only
 * the folders below it, and no module imports itself through a loop.
 * `deno lint` has no rule for this, so this test reads the import lines.
 */
import assert from "node:assert/strict";

/**
 * What each folder of `lib/` may import besides itself. Files directly in
 * `lib/` (config, system, shutdown) assemble the rest and may import
 * anything; no folder may import them.
 */
const ALLOWED: Record<string, readonly string[]> = {
  async: [],
  orders: ["async"],
  webhooks: ["orders", "async"],
  observe: ["orders", "async"],
  store: ["orders", "webhooks", "observe", "async"],
  http: ["orders", "webhooks", "observe", "async", "store"],
};

const LIB = new URL("../lib/", import.meta.url);

/** A module of `lib/` and the `lib/` modules it imports. */
type ImportGraph = Map<string, string[]>;

// Static imports and re-exports (single- or multi-line), side-effect
// imports, and dynamic imports; JSDoc examples are skipped.
const SPECIFIER =
  /(?:^|[\s;}])(?:from|import)\s*\(?\s*["'](\.{1,2}\/[^"']+)["']/g;

function importsOf(source: string): string[] {
  const code = source
    .split("\n")
    .filter((line) => !/^\s*(\*|\/\/|\/\*)/.test(line))
    .join("\n");
  return [...code.matchAll(SPECIFIER)].map((match) => match[1]!);
}

/** Reads every `.ts` file under `lib/` into a graph of paths like "http/app.ts". */
function readGraph(): ImportGraph {
  const graph: ImportGraph = new Map();
  const visit = (dir: URL, prefix: string) => {
    for (const entry of Deno.readDirSync(dir)) {
      const path = prefix + entry.name;
      if (entry.isDirectory) {
        visit(new URL(`${entry.name}/`, dir), `${path}/`);
      } else if (entry.name.endsWith(".ts")) {
        const fileUrl = new URL(entry.name, dir);
        const targets = importsOf(Deno.readTextFileSync(fileUrl)).map((spec) =>
          new URL(spec, fileUrl).href.slice(LIB.href.length)
        );
        graph.set(path, targets);
      } else {
        // An asset imported as text (the dashboard's script and styles).
        graph.set(path, []);
      }
    }
  };
  visit(LIB, "");
  return graph;
}

function folderOf(path: string): string | undefined {
  const slash = path.indexOf("/");
  return slash === -1 ? undefined : path.slice(0, slash);
}

/** Every import that crosses the layers the wrong way, as "from -> to". */
function forbiddenImports(graph: ImportGraph): string[] {
  const found: string[] = [];
  for (const [from, targets] of graph) {
    const fromFolder = folderOf(from);
    if (fromFolder === undefined) continue; // the assembling top level
    for (const to of targets) {
      const toFolder = folderOf(to);
      const allowed = toFolder === fromFolder ||
        (toFolder !== undefined &&
          (ALLOWED[fromFolder] ?? []).includes(toFolder));
      if (!allowed) found.push(`${from} -> ${to}`);
    }
  }
  return found;
}

/** One import loop, as a list of paths that starts and ends with the same one. */
function findCycle(graph: ImportGraph): string[] | undefined {
  const done = new Set<string>();
  const onPath: string[] = [];
  const walk = (node: string): string[] | undefined => {
    const at = onPath.indexOf(node);
    if (at !== -1) return [...onPath.slice(at), node];
    if (done.has(node)) return undefined;
    onPath.push(node);
    for (const next of graph.get(node) ?? []) {
      const cycle = walk(next);
      if (cycle) return cycle;
    }
    onPath.pop();
    done.add(node);
    return undefined;
  };
  for (const node of graph.keys()) {
    const cycle = walk(node);
    if (cycle) return cycle;
  }
  return undefined;
}

Deno.test("lib/ has exactly the folders the layer rules name", () => {
  const folders = [...Deno.readDirSync(LIB)]
    .filter((entry) => entry.isDirectory)
    .map((entry) => entry.name)
    .sort();
  assert.deepEqual(folders, Object.keys(ALLOWED).sort());
});

Deno.test("every import in lib/ resolves to a file that exists", () => {
  const graph = readGraph();
  const missing = [...graph].flatMap(([from, targets]) =>
    targets.filter((to) => !graph.has(to)).map((to) => `${from} -> ${to}`)
  );
  assert.deepEqual(missing, []);
});

Deno.test("a folder of lib/ imports only the folders below it", () => {
  assert.deepEqual(forbiddenImports(readGraph()), []);
});

Deno.test("no module of lib/ imports itself through a loop", () => {
  assert.equal(findCycle(readGraph()), undefined);
});

Deno.test("the layout checks see a forbidden import, a loop and a multi-line import", () => {
  const source =
    `import {\n  a,\n} from "../http/app.ts";\n * import { b } from "../http/x.ts";\nconst c = await import("./c.ts");`;
  assert.deepEqual(importsOf(source), ["../http/app.ts", "./c.ts"]);
  const graph: ImportGraph = new Map([
    ["orders/order.ts", ["http/app.ts", "async/delay.ts"]],
    ["async/delay.ts", ["config.ts"]],
    ["http/app.ts", ["orders/order.ts"]],
    ["config.ts", []],
  ]);
  assert.deepEqual(forbiddenImports(graph), [
    "orders/order.ts -> http/app.ts",
    "async/delay.ts -> config.ts",
  ]);
  assert.deepEqual(findCycle(graph), [
    "orders/order.ts",
    "http/app.ts",
    "orders/order.ts",
  ]);
});

Deno.test("main.ts and lib/config.ts reach the stores only through lib/store/open.ts, and name no store class", () => {
  const ROOT = new URL("../", import.meta.url);
  for (const file of ["main.ts", "lib/config.ts"]) {
    const fileUrl = new URL(file, ROOT);
    const source = Deno.readTextFileSync(fileUrl);
    const stores = importsOf(source)
      .map((spec) => new URL(spec, fileUrl).href.slice(LIB.href.length))
      .filter((path) => path.startsWith("store/"));
    assert.deepEqual(
      stores.filter((path) => path !== "store/open.ts"),
      [],
      `${file} imports a store`,
    );
    assert.doesNotMatch(
      source,
      /\b(MemoryStore|SqliteStore|PostgresStore)\b/,
      file,
    );
  }
});
