/**
 * Process metrics taken from the Deno runtime and Linux's `/proc`, in place
 * of prom-client's defaults: under Deno those read 0 (resident and virtual
 * memory, open descriptors, heap), never sample GC, and report the Node
 * compatibility version as the runtime's.
 *
 * @module
 */

import process from "node:process";
import client from "prom-client";

/** Reads a file, or `undefined` where it does not exist or cannot be read. */
function readText(path: string): string | undefined {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return undefined;
  }
}

/** Virtual memory size in bytes, from `/proc/self/stat`. */
function virtualMemoryBytes(): number | undefined {
  const stat = readText("/proc/self/stat");
  if (stat === undefined) return undefined;
  // Fields after the command name (which may hold spaces and parentheses):
  // state is field 3, vsize field 23.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const vsize = Number(fields[20]);
  return Number.isFinite(vsize) ? vsize : undefined;
}

function openFileDescriptors(): number | undefined {
  try {
    let count = 0;
    for (const _ of Deno.readDirSync("/proc/self/fd")) count++;
    return count;
  } catch {
    return undefined; // no /proc, or no descriptor free to read it
  }
}

function maxFileDescriptors(): number | undefined {
  const limits = readText("/proc/self/limits");
  const soft = limits?.match(/^Max open files\s+(\d+|unlimited)/m)?.[1];
  return soft === undefined || soft === "unlimited" ? undefined : Number(soft);
}

/**
 * Registers process and runtime metrics in `registry`. Metrics whose
 * source this system lacks (no `/proc`) are left out rather than reported
 * as 0. Every value is read when Prometheus scrapes.
 */
export function registerProcessMetrics(registry: client.Registry): void {
  const registers = [registry];
  const gauge = (
    name: string,
    help: string,
    read: () => number | undefined,
  ) => {
    if (read() === undefined) return; // this system cannot tell
    new client.Gauge({
      name,
      help,
      registers,
      collect() {
        const value = read();
        if (value !== undefined) this.set(value);
      },
    });
  };
  gauge(
    "process_resident_memory_bytes",
    "Resident memory size in bytes.",
    () => Deno.memoryUsage().rss,
  );
  gauge(
    "process_virtual_memory_bytes",
    "Virtual memory size in bytes.",
    virtualMemoryBytes,
  );
  gauge(
    "process_open_fds",
    "Open file descriptors.",
    openFileDescriptors,
  );
  gauge(
    "process_max_fds",
    "The soft limit on open file descriptors (ulimit -n).",
    maxFileDescriptors,
  );
  gauge(
    "process_start_time_seconds",
    "Start time of the process since the Unix epoch, in seconds.",
    () => performance.timeOrigin / 1000,
  );
  gauge(
    "deno_heap_used_bytes",
    "V8 heap in use, in bytes.",
    () => Deno.memoryUsage().heapUsed,
  );
  gauge(
    "deno_heap_total_bytes",
    "V8 heap reserved, in bytes.",
    () => Deno.memoryUsage().heapTotal,
  );
  gauge(
    "deno_external_memory_bytes",
    "Memory held by V8 for objects outside its heap (buffers), in bytes.",
    () => Deno.memoryUsage().external,
  );
  let cpuSecondsReported = 0;
  new client.Counter({
    name: "process_cpu_seconds_total",
    help: "User and system CPU time spent, in seconds.",
    registers,
    collect() {
      const { user, system } = process.cpuUsage();
      // A counter only goes up: add what was spent since the last scrape.
      const total = (user + system) / 1e6;
      if (total > cpuSecondsReported) {
        this.inc(total - cpuSecondsReported);
        cpuSecondsReported = total;
      }
    },
  });
  const info = new client.Gauge({
    name: "deno_version_info",
    help: "The Deno runtime's versions; always 1.",
    labelNames: ["deno", "v8", "typescript"],
    registers,
  });
  info.set({ ...Deno.version }, 1);
}
