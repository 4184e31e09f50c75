/**
 * The `/processing` resource: an operator pauses and resumes the workers.
 *
 * @module
 */

import { Hono } from "hono";
import type { PauseState } from "../orders/processing_pause.ts";
import {
  commonResponses,
  type DocContext,
  json,
  type PathItems,
  ref,
} from "./openapi_parts.ts";

/** What the processing routes need. */
export interface ProcessingRoutesOptions {
  /** The state this instance holds to. */
  state: () => PauseState;
  /** Pauses or resumes every worker this switch reaches (see `system.ts`). */
  set: (paused: boolean) => Promise<PauseState>;
}

function stateJson(state: PauseState) {
  return {
    paused: state.paused,
    since: state.since === null ? null : new Date(state.since).toISOString(),
  };
}

/** Creates `GET /processing`, `POST /processing/pause` and `/resume`. */
export function processingRoutes(options: ProcessingRoutesOptions) {
  return new Hono()
    .get("/processing", (c) => c.json(stateJson(options.state()), 200))
    // Both are safe to repeat: pausing a paused service changes nothing
    // but the time it reports.
    .post(
      "/processing/pause",
      async (c) => c.json(stateJson(await options.set(true)), 200),
    )
    .post(
      "/processing/resume",
      async (c) => c.json(stateJson(await options.set(false)), 200),
    );
}

/** The OpenAPI operations of the routes above. */
export function processingDocs(ctx: DocContext): PathItems {
  const change = (paused: boolean) => ({
    post: {
      operationId: paused ? "pauseProcessing" : "resumeProcessing",
      tags: ["operations"],
      summary: paused ? "Pause processing" : "Resume processing",
      description: paused
        ? "The workers take no more orders; steps already running finish. Intake goes on until the queue is full (then 503, as always), and `/ready` stays ready. On PostgreSQL the pause holds for every instance, including one that starts while paused; SQLite keeps it across a restart; memory holds it for the process. Stopping the service while paused leaves queued orders pending in a store that keeps orders; the memory store processes them first."
        : "The workers take orders again, queued ones first.",
      ...ctx.secured,
      responses: {
        "200": {
          description: paused ? "Paused" : "Running",
          content: json(ref("Processing")),
        },
        ...commonResponses(ctx),
      },
    },
  });
  return {
    "/processing": {
      get: {
        operationId: "processingState",
        tags: ["operations"],
        summary: "Whether processing is paused",
        ...ctx.secured,
        responses: {
          "200": {
            description: "The state this instance holds to",
            content: json(ref("Processing")),
          },
          ...commonResponses(ctx),
        },
      },
    },
    "/processing/pause": change(true),
    "/processing/resume": change(false),
  };
}
