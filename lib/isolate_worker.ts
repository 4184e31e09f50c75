/**
 * One isolate of a process started with `PARALLEL` above 1: a Worker that
 * runs a whole instance (`instance.ts`) and answers the main isolate
 * (`isolates.ts`) by message.
 *
 * @module
 */

/// <reference lib="deno.worker" />

import { getLogger } from "@logtape/logtape";
import { readiness } from "./http/health.ts";
import type { MetricsJson, Peers, Readiness } from "./http/peers.ts";
import {
  type RunningInstance,
  startInstance,
  StartUpError,
} from "./instance.ts";
import { IsolateMesh } from "./isolate_mesh.ts";
import type { FromIsolate, ToIsolate } from "./isolates.ts";
import {
  configureLogging,
  LIFECYCLE_CATEGORY,
  LOG_CATEGORY,
} from "./observe/logging.ts";

let running: RunningInstance | undefined;
let mesh: IsolateMesh | undefined;
let closeLogging: (() => Promise<void>) | undefined;
let nextGatherId = 1;
const gatherings = new Map<number, (values: unknown[]) => void>();

function send(message: FromIsolate): void {
  self.postMessage(message);
}

/** Asks every isolate, through the main isolate, and waits for all answers. */
function gather(what: "metrics" | "readiness"): Promise<unknown[]> {
  const id = nextGatherId++;
  const { promise, resolve } = Promise.withResolvers<unknown[]>();
  gatherings.set(id, resolve);
  send({ type: "gather", id, what });
  return promise;
}

const peers: Peers = {
  metrics: async () =>
    (await gather("metrics")).filter((value): value is MetricsJson =>
      Array.isArray(value)
    ),
  notReady: async () => {
    const answers = await gather("readiness");
    for (const [index, answer] of answers.entries()) {
      // No answer in time: an isolate that cannot answer cannot serve.
      if (answer === undefined) {
        return {
          type: "store-unavailable",
          detail: `an isolate did not answer within the time allowed (${
            index + 1
          } of ${answers.length} answers)`,
        } satisfies Readiness;
      }
      if (answer !== null) return answer as Readiness;
    }
    return undefined;
  },
};

async function report(what: "metrics" | "readiness") {
  if (running === undefined) return null;
  const { system } = running;
  if (what === "metrics") {
    return await system.metrics?.registry.getMetricsAsJSON() as
      | MetricsJson
      | undefined ?? [];
  }
  return readiness({
    isAccepting: () => system.service.accepting,
    storeProblem: () => system.storeHealth.problem,
  }) ?? null;
}

self.onmessage = async (event: MessageEvent<ToIsolate>) => {
  const message = event.data;
  switch (message.type) {
    case "start": {
      const { config, index, count } = message;
      mesh = new IsolateMesh(new Map(message.ports));
      closeLogging = await configureLogging(config.logLevel);
      const lifecycle = getLogger([...LIFECYCLE_CATEGORY]).with({
        isolate: index,
      });
      try {
        running = await startInstance({
          config,
          logger: getLogger([LOG_CATEGORY]).with({ isolate: index }),
          lifecycle,
          isolate: { index, count, peers, mesh },
          onListen: ({ port }) => send({ type: "listening", port }),
        });
      } catch (error) {
        if (!(error instanceof StartUpError)) throw error;
        send({ type: "failed", reason: error.message });
      }
      break;
    }
    case "report":
      send({
        type: "reported",
        id: message.id,
        value: await report(message.what),
      });
      break;
    case "gathered":
      gatherings.get(message.id)?.(message.values);
      gatherings.delete(message.id);
      break;
    case "drain": {
      if (running === undefined) break;
      const summary = await running.drain({
        timeoutMs: message.timeoutMs,
        quiet: true,
      });
      await closeLogging?.();
      send({ type: "drained", summary });
      break;
    }
  }
};
