/**
 * The store's webhook port: endpoints, and the outbox of deliveries that
 * the order store writes in the same transaction as the change that
 * causes them (so a crash between the change and the send loses nothing).
 *
 * @module
 */

import type {
  Delivery,
  DeliveryStatus,
  Endpoint,
  EndpointChanges,
  EndpointSecret,
} from "./model.ts";

/** What an attempt came to. */
export interface AttemptOutcome {
  status: Delivery["status"];
  next_attempt_at: number | null;
  last_status: number | null;
  last_error: string | null;
}

/** Endpoints and deliveries; every method atomic. */
export interface WebhookStore {
  createEndpoint(endpoint: Endpoint): Promise<void>;
  /** Every endpoint, oldest first. */
  endpoints(): Promise<Endpoint[]>;
  endpoint(id: string): Promise<Endpoint | undefined>;
  /** Removes it and its deliveries; `false` when there was none. */
  deleteEndpoint(id: string): Promise<boolean>;
  /**
   * Changes the fields given, in one step (two changes at once each keep
   * the other's fields); `undefined` when there is no such endpoint.
   */
  updateEndpoint(
    id: string,
    changes: EndpointChanges,
  ): Promise<Endpoint | undefined>;
  /** Replaces its secrets; `undefined` when there is no such endpoint. */
  setSecrets(
    id: string,
    secrets: EndpointSecret[],
  ): Promise<Endpoint | undefined>;
  /** Disables it for `reason`, if it is enabled. */
  disable(id: string, at: number, reason: string): Promise<void>;
  /**
   * Enables it again, if it is disabled, from `at`; the endpoint, or
   * `undefined` when there is no such endpoint.
   */
  enable(id: string, at: number): Promise<Endpoint | undefined>;
  /** Its latest deliveries, newest first; only those in `status`, if given. */
  deliveries(
    endpointId: string,
    limit: number,
    status?: DeliveryStatus,
  ): Promise<Delivery[]>;
  delivery(endpointId: string, id: string): Promise<Delivery | undefined>;
  /**
   * Up to `limit` of the endpoint's deliveries that are due at `now`, in
   * the order they were made, for this instance to send, held until it
   * records their attempts. A delivery waits while an earlier one of the
   * same order to the same endpoint is held or has not been tried yet, so
   * one order's messages go out in order unless one is being retried.
   */
  claimDue(endpointId: string, now: number, limit: number): Promise<Delivery[]>;
  /**
   * Records the attempt of a delivery this instance holds, and lets it go;
   * `false` when it no longer holds it (another instance took it over).
   */
  recordAttempt(id: string, outcome: AttemptOutcome): Promise<boolean>;
  /** Makes a delivery due now, whatever its status; the delivery, or `undefined`. */
  retryNow(
    endpointId: string,
    id: string,
    now: number,
  ): Promise<Delivery | undefined>;
  /**
   * Makes every failed delivery of the endpoint whose change happened at
   * or after `since` due at `now` (an endpoint's receiver back after an
   * outage longer than the schedule); how many.
   */
  retryFailed(endpointId: string, since: number, now: number): Promise<number>;
  /**
   * Removes up to `limit` delivered messages whose last attempt was before
   * `before`, oldest first; how many. Failed and pending ones are kept.
   */
  prune(before: number, limit: number): Promise<number>;
  /** The time of the endpoint's last delivered message, if any (for disabling). */
  lastDelivered(endpointId: string): Promise<number | null>;
  /** Calls `wake` when a change has recorded deliveries here (in this process). */
  onRecorded(wake: () => void): void;
}
