/**
 * Sends the outbox: each endpoint has its own loop, so that a slow or dead
 * endpoint holds up only its own messages, never another's, the order
 * pipeline or the API. At most `perEndpoint` messages are in flight to one
 * endpoint and `total` in all. Each attempt is signed anew (its timestamp
 * is when it is sent) and sent by the {@linkcode WebhookSender}, which
 * holds it to the address policy. Any 2xx delivers; a 410 disables the
 * endpoint; anything else is tried again on the schedule, and after the
 * last attempt the message is failed until retried by hand.
 *
 * @module
 */

import type { Logger } from "@logtape/logtape";
import type { Delivery, Endpoint } from "./model.ts";
import { DISABLE_AFTER_MS, retryDelayMs } from "./schedule.ts";
import type { SendResult, WebhookSender } from "./sender.ts";
import { signatureHeader } from "./signature.ts";
import type { AttemptOutcome, WebhookStore } from "./webhook_store.ts";

/** What one attempt came to, for metrics. */
export type AttemptResult = "delivered" | "retrying" | "failed" | "disabled";

/** Options for {@linkcode WebhookDispatcher}. */
export interface WebhookDispatcherOptions {
  store: WebhookStore;
  /** The message body of a delivery: `{ type, timestamp, data }` as JSON. */
  render: (delivery: Delivery) => string;
  /** Sends each attempt; the dispatcher's own, closed when it stops. */
  sender: Pick<WebhookSender, "send" | "close">;
  logger: Logger;
  /** Scales the retry schedule and the disabling window (default 1). */
  scheduleScale?: number | undefined;
  /** Messages in flight to one endpoint (default 4). */
  perEndpoint?: number;
  /** Messages in flight in all (default 64). */
  total?: number;
  /** The backstop look for due messages (default 250 ms). */
  pollMs?: number;
  /** Told of every attempt. */
  onAttempt?: (result: AttemptResult, seconds: number) => void;
  now?: () => number;
}

/** Sends due messages until stopped. */
export class WebhookDispatcher {
  readonly #options: WebhookDispatcherOptions;
  readonly #stop = new AbortController();
  readonly #inFlight = new Map<string, number>();
  readonly #sends = new Set<Promise<void>>();
  #total = 0;
  // Whether the last look found an enabled endpoint (until then, assumed).
  #hasEndpoints = true;
  #wake: PromiseWithResolvers<void> = Promise.withResolvers();
  #loop: Promise<void> | undefined;

  /** Creates the dispatcher; {@linkcode start} runs it. */
  constructor(options: WebhookDispatcherOptions) {
    this.#options = options;
  }

  /** Starts sending. */
  start(): void {
    this.#loop ??= this.#run();
  }

  /** Looks for due messages now (a change was recorded, an endpoint added). */
  wake(): void {
    this.#wake.resolve();
  }

  /**
   * Orders changed, and any messages they make were written with them:
   * looks now, unless no endpoint is enabled (then a change has none, and
   * a new endpoint wakes it itself).
   */
  changed(): void {
    if (this.#hasEndpoints) this.wake();
  }

  /** Stops taking messages and waits for those in flight (each bounded). */
  async stop(): Promise<void> {
    this.#stop.abort();
    this.wake();
    await this.#loop;
    await Promise.all(this.#sends);
    this.#options.sender.close();
  }

  async #run(): Promise<void> {
    const { store, logger } = this.#options;
    const signal = this.#stop.signal;
    let failing = false;
    while (!signal.aborted) {
      this.#wake = Promise.withResolvers();
      try {
        const endpoints = await store.endpoints();
        this.#hasEndpoints = endpoints.some((e) => e.disabled_at === null);
        for (const endpoint of endpoints) {
          if (endpoint.disabled_at === null) await this.#fill(endpoint);
        }
        if (failing) logger.info("Webhook deliveries go on again");
        failing = false;
      } catch (error) {
        if (!failing) {
          logger.warning("Cannot read the webhook outbox: {error}", { error });
        }
        failing = true;
      }
      // One timer per turn, cleared when a wake-up comes first: wake-ups
      // come with every change, and a listener each on a long-lived signal
      // made the loop cost grow with the load (CPU profile).
      const wake = this.#wake.promise;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.#options.pollMs ?? 250);
        wake.then(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Claims what the endpoint's free slots allow and sends it. */
  async #fill(endpoint: Endpoint): Promise<void> {
    const perEndpoint = this.#options.perEndpoint ?? 4;
    const total = this.#options.total ?? 64;
    const busy = this.#inFlight.get(endpoint.id) ?? 0;
    const room = Math.min(perEndpoint - busy, total - this.#total);
    if (room <= 0) return;
    const now = (this.#options.now ?? Date.now)();
    const due = await this.#options.store.claimDue(endpoint.id, now, room);
    for (const delivery of due) {
      this.#inFlight.set(
        endpoint.id,
        (this.#inFlight.get(endpoint.id) ?? 0) + 1,
      );
      this.#total++;
      const send: Promise<void> = this.#attempt(endpoint, delivery)
        .catch((error) =>
          this.#options.logger.error(
            "Webhook delivery {deliveryId} failed unexpectedly: {error}",
            { deliveryId: delivery.id, error },
          )
        )
        .finally(() => {
          this.#inFlight.set(endpoint.id, this.#inFlight.get(endpoint.id)! - 1);
          this.#total--;
          this.#sends.delete(send);
          this.wake();
        });
      this.#sends.add(send);
    }
  }

  async #attempt(endpoint: Endpoint, delivery: Delivery): Promise<void> {
    const { store, logger } = this.#options;
    const now = this.#options.now ?? Date.now;
    const started = performance.now();
    const sent = await this.#send(endpoint, delivery, now());
    const seconds = (performance.now() - started) / 1000;
    let outcome: AttemptOutcome;
    let result: AttemptResult;
    if (sent.ok) {
      outcome = {
        status: "delivered",
        next_attempt_at: null,
        last_status: sent.status ?? null,
        last_error: null,
      };
      result = "delivered";
    } else {
      const wait = retryDelayMs(
        delivery.attempts + 2,
        this.#options.scheduleScale ?? 1,
      );
      const gone = sent.status === 410;
      outcome = {
        status: wait === undefined || gone ? "failed" : "pending",
        next_attempt_at: wait === undefined || gone ? null : now() + wait,
        last_status: sent.status ?? null,
        last_error: sent.error,
      };
      result = gone ? "disabled" : wait === undefined ? "failed" : "retrying";
    }
    // Fenced: the store takes it only while this instance holds the
    // delivery, so an attempt that outlived its hold never marks a message
    // delivered that another instance has taken over.
    await store.recordAttempt(delivery.id, outcome);
    this.#options.onAttempt?.(result, seconds);
    if (result === "disabled") {
      await store.disable(endpoint.id, now(), "the endpoint answered 410 Gone");
      logger.warning(
        "Webhook endpoint {endpointId} answered 410 Gone: disabled",
        {
          endpointId: endpoint.id,
        },
      );
    } else if (!sent.ok) await this.#disableIfDead(endpoint);
  }

  /** Disables an endpoint that has delivered nothing for the window. */
  async #disableIfDead(endpoint: Endpoint): Promise<void> {
    const now = (this.#options.now ?? Date.now)();
    const window = DISABLE_AFTER_MS * (this.#options.scheduleScale ?? 1);
    const last = Math.max(
      await this.#options.store.lastDelivered(endpoint.id) ?? 0,
      endpoint.enabled_at ?? endpoint.created_at,
    );
    if (now - last < window) return;
    await this.#options.store.disable(
      endpoint.id,
      now,
      "every message failed for the disabling window",
    );
    this.#options.onAttempt?.("disabled", 0);
    this.#options.logger.warning(
      "Webhook endpoint {endpointId} failed every message since {since}: disabled",
      { endpointId: endpoint.id, since: new Date(last).toISOString() },
    );
  }

  /** One signed POST; what it came to. Never throws. */
  async #send(
    endpoint: Endpoint,
    delivery: Delivery,
    now: number,
  ): Promise<SendResult> {
    const body = this.#options.render(delivery);
    const timestamp = Math.floor(now / 1000);
    const secrets = endpoint.secrets
      .filter((s) => s.expires_at === null || s.expires_at > now)
      .map((s) => s.secret);
    return await this.#options.sender.send(endpoint.url, {
      "content-type": "application/json",
      "user-agent": "order-service-webhooks",
      "webhook-id": delivery.id,
      "webhook-timestamp": String(timestamp),
      "webhook-signature": await signatureHeader(
        secrets,
        delivery.id,
        timestamp,
        body,
      ),
    }, body);
  }
}
