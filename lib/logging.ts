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
        category: ["logtape", "meta"],
        sinks: ["stdout"],
        lowestLevel: "warning",
      },
    ],
  });
  return dispose;
}
