/** Starts the real service as a child process, for end-to-end tests. */

const MAIN = new URL("../../main.ts", import.meta.url).pathname;

/** How the child process is started, besides its environment. */
export interface ProcessOptions {
  /** A lower open-file limit (`ulimit -n`) for the child only. */
  openFileLimit?: number;
}

/**
 * `main.ts` as the tasks run it, on a free loopback port by default; under
 * a lower `ulimit -n` when asked, set by a shell that then becomes deno.
 */
function serviceCommand(
  env: Record<string, string>,
  options: ProcessOptions = {},
): Deno.Command {
  const deno = [
    Deno.execPath(),
    "run",
    "--allow-net",
    "--allow-env",
    "--allow-read",
    "--allow-write",
    MAIN,
  ];
  const [command, ...args] = options.openFileLimit === undefined ? deno : [
    "bash",
    "-c",
    `ulimit -n ${options.openFileLimit} && exec "$@"`,
    "bash",
    ...deno,
  ];
  return new Deno.Command(command!, {
    args,
    env: { PORT: "0", HOST: "127.0.0.1", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  });
}

/** A running service process. */
export interface ServiceProcess {
  /** The port it listens on (chosen by the OS). */
  port: number;
  /** The process id (of deno itself: the shell of a lower ulimit execs it). */
  pid: number;
  /** Base URL, e.g. `http://127.0.0.1:41234`. */
  url: string;
  /** Every JSON log record printed so far. */
  records: Array<Record<string, unknown>>;
  /** Sends a signal. */
  kill(signal: Deno.Signal): void;
  /** Resolves with the exit status once stdout is fully read. */
  status: Promise<Deno.CommandStatus>;
  /** Text written to stderr, once it exits. */
  stderr: Promise<string>;
}

/**
 * Reads a service's JSON log lines from `stdout` into `records` (lines that
 * are not JSON, such as deno task's banner, are skipped). `listening`
 * resolves with the port of the `Listening` record, or rejects when the
 * output ends first; `done` resolves when it ends.
 */
export function readLogRecords(stdout: ReadableStream<Uint8Array>) {
  const records: Array<Record<string, unknown>> = [];
  const listening = Promise.withResolvers<number>();
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
        if (record.message === "Listening") listening.resolve(record.port);
      }
    }
    listening.reject(new Error("The service exited before listening"));
  })();
  return { records, listening: listening.promise, done };
}

/** Starts `main.ts` on a free loopback port with extra environment. */
export async function startService(
  env: Record<string, string> = {},
  options: ProcessOptions = {},
): Promise<ServiceProcess> {
  const child = serviceCommand({ LOG_LEVEL: "info", ...env }, options).spawn();
  const { records, listening, done } = readLogRecords(child.stdout);
  const stderr = new Response(child.stderr).text();
  const status = done.then(() => child.status);
  const port = await listening.catch(async (error) => {
    await status;
    throw new Error(`${error.message}: ${await stderr}`);
  });
  return {
    port,
    pid: child.pid,
    url: `http://127.0.0.1:${port}`,
    records,
    kill: (signal) => child.kill(signal),
    status,
    stderr,
  };
}

/** Runs `main.ts` with `env` until it exits (for start-up failures). */
export async function runToExit(
  env: Record<string, string>,
): Promise<{ code: number; stderr: string }> {
  const output = await serviceCommand(env).output();
  return { code: output.code, stderr: new TextDecoder().decode(output.stderr) };
}
