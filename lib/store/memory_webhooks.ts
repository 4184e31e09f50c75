/**
 * Webhook endpoints and deliveries in the process, lost with it like the
 * memory store's orders. The store calls {@linkcode MemoryWebhooks.record}
 * inside each change, so a change and its deliveries are one step.
 *
 * @module
 */

import { ulid } from "ulid";
import type { Order, TimelineEntry } from "../orders/order.ts";
import {
  type Delivery,
  type Endpoint,
  type EndpointSecret,
  eventTypesOf,
  wants,
} from "../webhooks/model.ts";
import type {
  AttemptOutcome,
  WebhookStore,
} from "../webhooks/webhook_store.ts";

// Delivered messages kept per endpoint for its list; pending and failed
// ones are all kept.
const DELIVERED_KEPT = 1000;

/** {@linkcode WebhookStore} in the process. */
export class MemoryWebhooks implements WebhookStore {
  readonly #endpoints = new Map<string, Endpoint>();
  // Each endpoint's deliveries, oldest first.
  readonly #deliveries = new Map<string, Delivery[]>();
  readonly #held = new Set<string>();
  #wake: () => void = () => {};

  /** Writes the deliveries a change makes (inside the store's change). */
  record(
    order: Order,
    created: boolean,
    added: readonly TimelineEntry[],
  ): void {
    if (this.#endpoints.size === 0) return;
    const types = eventTypesOf(created, added);
    if (types.length > 0) queueMicrotask(this.#wake);
    for (const type of types) {
      for (const endpoint of this.#endpoints.values()) {
        if (!wants(endpoint, type)) continue;
        const list = this.#deliveries.get(endpoint.id)!;
        list.push({
          id: `msg_${ulid()}`,
          endpoint_id: endpoint.id,
          order_id: order.id,
          type,
          created_at: order.updated_at,
          order: structuredClone(order),
          status: "pending",
          attempts: 0,
          next_attempt_at: order.updated_at,
          last_attempt_at: null,
          last_status: null,
          last_error: null,
        });
      }
    }
  }

  createEndpoint(endpoint: Endpoint): Promise<void> {
    this.#endpoints.set(endpoint.id, structuredClone(endpoint));
    this.#deliveries.set(endpoint.id, []);
    return Promise.resolve();
  }

  endpoints(): Promise<Endpoint[]> {
    return Promise.resolve(
      [...this.#endpoints.values()].map((e) => structuredClone(e)),
    );
  }

  endpoint(id: string): Promise<Endpoint | undefined> {
    const endpoint = this.#endpoints.get(id);
    return Promise.resolve(endpoint && structuredClone(endpoint));
  }

  deleteEndpoint(id: string): Promise<boolean> {
    this.#deliveries.delete(id);
    return Promise.resolve(this.#endpoints.delete(id));
  }

  setSecrets(
    id: string,
    secrets: EndpointSecret[],
  ): Promise<Endpoint | undefined> {
    const endpoint = this.#endpoints.get(id);
    if (endpoint) endpoint.secrets = structuredClone(secrets);
    return this.endpoint(id);
  }

  disable(id: string, at: number, reason: string): Promise<void> {
    const endpoint = this.#endpoints.get(id);
    if (endpoint && endpoint.disabled_at === null) {
      endpoint.disabled_at = at;
      endpoint.disabled_reason = reason;
    }
    return Promise.resolve();
  }

  deliveries(endpointId: string, limit: number): Promise<Delivery[]> {
    const list = this.#deliveries.get(endpointId) ?? [];
    return Promise.resolve(
      list.slice(-limit).reverse().map((d) => structuredClone(d)),
    );
  }

  delivery(endpointId: string, id: string): Promise<Delivery | undefined> {
    const found = this.#deliveries.get(endpointId)?.find((d) => d.id === id);
    return Promise.resolve(found && structuredClone(found));
  }

  claimDue(
    endpointId: string,
    now: number,
    limit: number,
  ): Promise<Delivery[]> {
    const claimed: Delivery[] = [];
    // Orders with an earlier message held or not yet tried: theirs wait.
    const waiting = new Set<string>();
    for (const delivery of this.#deliveries.get(endpointId) ?? []) {
      if (claimed.length === limit) break;
      if (delivery.status !== "pending") continue;
      const blocked = waiting.has(delivery.order_id);
      if (this.#held.has(delivery.id) || delivery.attempts === 0) {
        waiting.add(delivery.order_id);
      }
      if (blocked || this.#held.has(delivery.id)) continue;
      if (delivery.next_attempt_at! > now) continue;
      this.#held.add(delivery.id);
      claimed.push(structuredClone(delivery));
    }
    return Promise.resolve(claimed);
  }

  recordAttempt(id: string, outcome: AttemptOutcome): Promise<boolean> {
    if (!this.#held.delete(id)) return Promise.resolve(false);
    for (const [endpointId, list] of this.#deliveries) {
      const delivery = list.find((d) => d.id === id);
      if (!delivery) continue;
      Object.assign(delivery, outcome, {
        attempts: delivery.attempts + 1,
        last_attempt_at: Date.now(),
      });
      if (outcome.status === "delivered") this.#trim(endpointId, list);
      return Promise.resolve(true);
    }
    return Promise.resolve(false);
  }

  retryNow(
    endpointId: string,
    id: string,
    now: number,
  ): Promise<Delivery | undefined> {
    const delivery = this.#deliveries.get(endpointId)?.find((d) => d.id === id);
    if (delivery) {
      delivery.status = "pending";
      delivery.next_attempt_at = now;
    }
    return Promise.resolve(delivery && structuredClone(delivery));
  }

  onRecorded(wake: () => void): void {
    this.#wake = wake;
  }

  lastDelivered(endpointId: string): Promise<number | null> {
    const list = this.#deliveries.get(endpointId) ?? [];
    for (let index = list.length - 1; index >= 0; index--) {
      if (list[index]!.status === "delivered") {
        return Promise.resolve(list[index]!.last_attempt_at);
      }
    }
    return Promise.resolve(null);
  }

  #trim(endpointId: string, list: Delivery[]): void {
    let delivered = 0;
    for (const delivery of list) {
      if (delivery.status === "delivered") delivered++;
    }
    if (delivered <= DELIVERED_KEPT) return;
    const index = list.findIndex((d) => d.status === "delivered");
    list.splice(index, 1);
    this.#deliveries.set(endpointId, list);
  }
}
