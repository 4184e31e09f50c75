/**
 * Structured logging: JSON lines on stdout, through LogTape.
 *
 * @module
 */

import {
  configure,
  dispose,
  getJsonLinesFormatter,
  getStreamSink,
  type LogLevel,
} from "@logtape/logtape";

/** The root category of every logger in the service. */
export const LOG_CATEGORY = "order-service";

/**
 * The category of life-cycle records: start-up, listening address, each
 * shutdown step and the summary. They are logged at `info` even when
 * `LOG_LEVEL` is higher, because operators and tests rely on them and there
 * are only a handful per process.
 */
export const LIFECYCLE_CATEGORY = [LOG_CATEGORY, "lifecycle"] as const;

/**
 * Sends records at `level` and above to `stream` as JSON lines, properties
 * flattened into each record so log tools can index them. Returns a
 * function that flushes and closes the sink (call it before exiting, or
 * the last records are lost).
 */
export async function configureLogging(
  level: "debug" | "info" | "warning" | "error",
  stream: WritableStream<Uint8Array> = Deno.stdout.writable,
): Promise<() => Promise<void>> {
  await configure({
    sinks: {
      stdout: getStreamSink(stream, {
        formatter: getJsonLinesFormatter({ properties: "flatten" }),
      }),
    },
    loggers: [
      {
        category: [LOG_CATEGORY],
        sinks: ["stdout"],
        lowestLevel: level as LogLevel,
      },
      {
        category: [...LIFECYCLE_CATEGORY],
        // Its own sink: the parent's level would otherwise filter it out.
        sinks: ["stdout"],
        parentSinks: "override",
        lowestLevel: level === "debug" ? "debug" : "info",
      },
      {
        category: ["logtape", "meta"],
        sinks: ["stdout"],
        lowestLevel: "warning",
      },
    ],
  });
  return dispose;
}
