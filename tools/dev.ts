/**
 * `deno task dev`: runs the service and restarts it when a source file
 * changes, draining it first.
 *
 * Why not `deno run --watch`: in Deno 2.9 its watcher swallows an outside
 * SIGTERM (with or without a listener, the process stays up, waiting for a
 * file change), so a supervisor or an IDE could not stop `deno task dev`;
 * and it raises SIGTERM itself before each restart, so the service's drain
 * could not tell a restart from a stop. Here the roles are plain: a file
 * change restarts the service (SIGTERM, drain, start again); SIGTERM or
 * SIGINT to this process stops it (SIGTERM, drain, exit with its code).
 *
 * @module
 */

const WATCHED = ["main.ts", "lib"];
const SERVICE_ARGS = [
  "run",
  "--allow-net",
  "--allow-env",
  "--allow-read",
  "--allow-write",
  "main.ts",
  ...Deno.args,
];
/** Changes within this long are one change (an editor writes a file in several steps). */
const DEBOUNCE_MS = 100;

function start(): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: SERVICE_ARGS,
    stdin: "null",
  }).spawn();
}

let child = start();
let stopping = false;

/** Asks the service to drain and waits for it to exit. */
async function stopChild(): Promise<Deno.CommandStatus> {
  try {
    child.kill("SIGTERM");
  } catch { /* already exited */ }
  return await child.status;
}

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(signal, async () => {
    if (stopping) return;
    stopping = true;
    const status = await stopChild();
    Deno.exit(status.code);
  });
}

let timer: ReturnType<typeof setTimeout> | undefined;
for await (const event of Deno.watchFs(WATCHED, { recursive: true })) {
  if (!event.paths.some((path) => path.endsWith(".ts"))) continue;
  clearTimeout(timer);
  timer = setTimeout(async () => {
    if (stopping) return;
    console.error(`dev: ${event.paths[0]} changed; restarting`);
    await stopChild();
    if (!stopping) child = start();
  }, DEBOUNCE_MS);
}
