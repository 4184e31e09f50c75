/**
 * Starts the real service as a child process, for end-to-end tests, the way
 * the README starts it: `deno task start`, with exactly that task's
 * permissions.
 */

const ROOT = new URL("../../", import.meta.url).pathname;

/** How the child process is started, besides its environment. */
export interface ProcessOptions {
  /** A lower open-file limit (`ulimit -n`) for the child only. */
  openFileLimit?: number;
  /**
   * Runs `deno run --allow-all main.ts` instead of the start task: the
   * documented way to turn on what needs `/proc` (the idle-connection
   * check and the descriptor metrics), which Deno grants only with it.
   */
  allowAll?: boolean;
}

/**
 * `deno task start` on a free loopback port by default; under a lower
 * `ulimit -n` when asked, set by a shell that then becomes the task runner
 * (the service inherits the limit).
 */
function serviceCommand(
  env: Record<string, string>,
  options: ProcessOptions = {},
): Deno.Command {
  const task = options.allowAll
    ? [Deno.execPath(), "run", "--allow-all", "main.ts"]
    : [Deno.execPath(), "task", "start"];
  const [command, ...args] = options.openFileLimit === undefined ? task : [
    "bash",
    "-c",
    `ulimit -n ${options.openFileLimit} && exec "$@"`,
    "bash",
    ...task,
  ];
  return new Deno.Command(command!, {
    args,
    cwd: ROOT,
    env: { PORT: "0", HOST: "127.0.0.1", NO_COLOR: "1", ...passEnv(), ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  });
}

/**
 * The setting every service of this run starts with unless its test sets
 * it: `TEST_PARALLEL=2 deno test tests/e2e/` is CI's second pass, the same
 * tests against two isolates per process.
 */
export const TEST_PARALLEL = Deno.env.get("TEST_PARALLEL");

/** The isolates each service of this run has, unless its test sets `PARALLEL`. */
export const TEST_ISOLATES = Number(TEST_PARALLEL ?? 1);

/**
 * The instance ids a PostgreSQL service started with `INSTANCE_ID=name`
 * registers: its name, or one per isolate (`name-1`, `name-2` …).
 */
export function instanceIdsOf(name: string): string[] {
  return TEST_ISOLATES === 1
    ? [name]
    : Array.from({ length: TEST_ISOLATES }, (_, index) =>
      `${name}-${index + 1}`);
}

/** The environment a service of this run starts with: the pass's `PARALLEL`. */
export function passEnv(): Record<string, string> {
  return TEST_PARALLEL === undefined ? {} : { PARALLEL: TEST_PARALLEL };
}

const SIGNAL_NUMBERS: Partial<Record<number, Deno.Signal>> = {
  2: "SIGINT",
  6: "SIGABRT",
  9: "SIGKILL",
  15: "SIGTERM",
};

/**
 * The service's exit as the task runner reports it: a service ended by a
 * signal makes `deno task` exit with 128 + the signal's number.
 */
function serviceStatus(task: Deno.CommandStatus): Deno.CommandStatus {
  const signal = task.code > 128 ? SIGNAL_NUMBERS[task.code - 128] : undefined;
  return signal === undefined
    ? task
    : { success: false, code: task.code, signal };
}

/** A running service process. */
export interface ServiceProcess {
  /** The port it listens on (chosen by the OS). */
  port: number;
  /** The service's own process id (from its `Listening` record), not the task runner's. */
  pid: number;
  /** Base URL, e.g. `http://127.0.0.1:41234`. */
  url: string;
  /** Every JSON log record printed so far. */
  records: Array<Record<string, unknown>>;
  /** Sends a signal to the service itself. */
  kill(signal: Deno.Signal): void;
  /** Resolves with the exit status once stdout is fully read. */
  status: Promise<Deno.CommandStatus>;
  /** Text written to stderr, once it exits. */
  stderr: Promise<string>;
}

/**
 * Reads a service's JSON log lines from `stdout` into `records` (lines that
 * are not JSON, such as deno task's banner, are skipped). `listening`
 * resolves with the port and pid of the `Listening` record, or rejects when the
 * output ends first; `done` resolves when it ends.
 */
export function readLogRecords(stdout: ReadableStream<Uint8Array>) {
  const records: Array<Record<string, unknown>> = [];
  const listening = Promise.withResolvers<
    { port: number; pid: number }
  >();
  const done = (async () => {
    let buffered = "";
    for await (const text of stdout.pipeThrough(new TextDecoderStream())) {
      buffered += text;
      let newline;
      while ((newline = buffered.indexOf("\n")) !== -1) {
        const line = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        if (!line.startsWith("{")) continue;
        const record = JSON.parse(line);
        records.push(record);
        if (record.message === "Listening") {
          listening.resolve({ port: record.port, pid: record.pid });
        }
      }
    }
    listening.reject(new Error("The service exited before listening"));
  })();
  return { records, listening: listening.promise, done };
}

/** Starts the service on a free loopback port with extra environment. */
export async function startService(
  env: Record<string, string> = {},
  options: ProcessOptions = {},
): Promise<ServiceProcess> {
  const child = serviceCommand({ LOG_LEVEL: "info", ...env }, options).spawn();
  const { records, listening, done } = readLogRecords(child.stdout);
  const stderr = new Response(child.stderr).text();
  const status = done.then(async () => serviceStatus(await child.status));
  const { port, pid } = await listening.catch(async (error) => {
    await status;
    throw new Error(`${error.message}: ${await stderr}`);
  });
  return {
    port,
    pid,
    url: `http://127.0.0.1:${port}`,
    records,
    kill: (signal) => Deno.kill(pid, signal),
    status,
    stderr,
  };
}

/** Runs the service with `env` until it exits (for start-up failures). */
export async function runToExit(
  env: Record<string, string>,
): Promise<{ code: number; stderr: string }> {
  const output = await serviceCommand(env).output();
  return { code: output.code, stderr: new TextDecoder().decode(output.stderr) };
}
