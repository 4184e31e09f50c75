/**
 * The other isolates of the process, as the routes that answer for the
 * whole process see them: `/metrics` sums every isolate's, `/ready` is
 * ready only while every isolate is.
 *
 * @module
 */

/** One isolate's metrics, as prom-client's `getMetricsAsJSON()` gives them. */
export type MetricsJson = unknown[];

/** What a route may ask of every isolate of the process. */
export interface Peers {
  /** Every isolate's metrics, this one's included. */
  metrics(): Promise<MetricsJson[]>;
  /**
   * Why some isolate is not ready (`draining`, or its store's problem),
   * or `undefined` when every isolate is.
   */
  notReady(): Promise<Readiness | undefined>;
}

/** Why an isolate is not ready. */
export interface Readiness {
  /** `store-unavailable` or `draining`. */
  type: "store-unavailable" | "draining";
  detail: string;
}
