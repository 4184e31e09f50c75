/**
 * An endpoint's health as the dashboard shows it, read from its latest
 * deliveries: the last success and failure, the messages waiting, and the
 * attempts that failed in the last hour.
 *
 * @module
 */

import type { Endpoint } from "./model.ts";
import type { WebhookStore } from "./webhook_store.ts";

/** Deliveries read per endpoint for its health. */
export const HEALTH_WINDOW = 500;

/** One endpoint's health. */
export interface EndpointHealth {
  id: string;
  url: string;
  enabled: boolean;
  disabled_reason: string | null;
  /** Epoch ms of the last delivered message, if any in the window. */
  last_success_at: number | null;
  /** Epoch ms and error of the last failed attempt, if any in the window. */
  last_failure_at: number | null;
  last_error: string | null;
  /** Messages not yet delivered nor failed for good, in the window. */
  backlog: number;
  /** Messages whose last attempt, in the last hour, failed. */
  failures_last_hour: number;
  /** Whether the window holds all of its deliveries. */
  complete: boolean;
}

/** The health of `endpoint` at `now`, from its latest deliveries. */
export async function endpointHealth(
  store: WebhookStore,
  endpoint: Endpoint,
  now: number,
): Promise<EndpointHealth> {
  const deliveries = await store.deliveries(endpoint.id, HEALTH_WINDOW);
  let lastSuccess: number | null = null;
  let lastFailure: number | null = null;
  let lastError: string | null = null;
  let backlog = 0;
  let failures = 0;
  for (const delivery of deliveries) {
    if (delivery.status === "pending") backlog++;
    const at = delivery.last_attempt_at;
    if (at === null) continue;
    if (delivery.status === "delivered") {
      if (lastSuccess === null || at > lastSuccess) lastSuccess = at;
    } else if (delivery.last_error !== null) {
      if (lastFailure === null || at > lastFailure) {
        lastFailure = at;
        lastError = delivery.last_error;
      }
      if (now - at <= 3_600_000) failures++;
    }
  }
  return {
    id: endpoint.id,
    url: endpoint.url,
    enabled: endpoint.disabled_at === null,
    disabled_reason: endpoint.disabled_reason,
    last_success_at: lastSuccess,
    last_failure_at: lastFailure,
    last_error: lastError,
    backlog,
    failures_last_hour: failures,
    complete: deliveries.length < HEALTH_WINDOW,
  };
}
