/**
 * Webhook endpoints and deliveries in the process, lost with it like the
 * memory store's orders. The store calls {@linkcode MemoryWebhooks.record}
 * inside each change, so a change and its deliveries are one step.
 *
 * @module
 */

import type { Order, TimelineEntry } from "../orders/order.ts";
import { pickDue } from "../webhooks/due.ts";
import {
  type Delivery,
  type DeliveryStatus,
  type Endpoint,
  type EndpointChanges,
  type EndpointSecret,
  eventTypesOf,
  newMessageId,
  wants,
} from "../webhooks/model.ts";
import type {
  AttemptOutcome,
  WebhookStore,
} from "../webhooks/webhook_store.ts";

// Delivered messages kept per endpoint for its list; pending and failed
// ones are all kept.
const DELIVERED_KEPT = 1000;

/** One endpoint's deliveries, each map in the order they were made. */
interface Outbox {
  pending: Map<string, Delivery>;
  finished: Map<string, Delivery>;
  delivered: number;
  /** The last attempt of the newest delivered message pruned (0: none). */
  prunedDeliveredAt: number;
}

/** {@linkcode WebhookStore} in the process. */
export class MemoryWebhooks implements WebhookStore {
  readonly #endpoints = new Map<string, Endpoint>();
  readonly #outboxes = new Map<string, Outbox>();
  // Which endpoint each delivery is for.
  readonly #endpointOf = new Map<string, string>();
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
    if (types.length === 0) return;
    let wrote = false;
    for (const type of types) {
      for (const endpoint of this.#endpoints.values()) {
        if (!wants(endpoint, type)) continue;
        const id = newMessageId();
        // Orders the store hands out are never changed afterwards: the
        // delivery keeps this one as the change left it.
        this.#outboxes.get(endpoint.id)!.pending.set(id, {
          id,
          endpoint_id: endpoint.id,
          order_id: order.id,
          type,
          created_at: order.updated_at,
          order,
          status: "pending",
          attempts: 0,
          next_attempt_at: order.updated_at,
          last_attempt_at: null,
          last_status: null,
          last_error: null,
        });
        this.#endpointOf.set(id, endpoint.id);
        wrote = true;
      }
    }
    if (wrote) queueMicrotask(this.#wake);
  }

  onRecorded(wake: () => void): void {
    this.#wake = wake;
  }

  createEndpoint(endpoint: Endpoint): Promise<void> {
    this.#endpoints.set(endpoint.id, structuredClone(endpoint));
    this.#outboxes.set(endpoint.id, {
      pending: new Map(),
      finished: new Map(),
      delivered: 0,
      prunedDeliveredAt: 0,
    });
    return Promise.resolve();
  }

  endpoints(): Promise<Endpoint[]> {
    return Promise.resolve([...this.#endpoints.values()].map(copyEndpoint));
  }

  endpoint(id: string): Promise<Endpoint | undefined> {
    const endpoint = this.#endpoints.get(id);
    return Promise.resolve(endpoint && copyEndpoint(endpoint));
  }

  deleteEndpoint(id: string): Promise<boolean> {
    const outbox = this.#outboxes.get(id);
    for (const map of outbox ? [outbox.pending, outbox.finished] : []) {
      for (const delivery of map.keys()) this.#endpointOf.delete(delivery);
    }
    this.#outboxes.delete(id);
    return Promise.resolve(this.#endpoints.delete(id));
  }

  updateEndpoint(
    id: string,
    changes: EndpointChanges,
  ): Promise<Endpoint | undefined> {
    const endpoint = this.#endpoints.get(id);
    if (endpoint) {
      if (changes.url !== undefined) endpoint.url = changes.url;
      if (changes.events !== undefined) {
        endpoint.events = changes.events && [...changes.events];
      }
      if (changes.description !== undefined) {
        endpoint.description = changes.description;
      }
    }
    return this.endpoint(id);
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

  enable(id: string, at: number): Promise<Endpoint | undefined> {
    const endpoint = this.#endpoints.get(id);
    if (endpoint && endpoint.disabled_at !== null) {
      endpoint.disabled_at = null;
      endpoint.disabled_reason = null;
      endpoint.enabled_at = at;
    }
    return this.endpoint(id);
  }

  prune(before: number, limit: number): Promise<number> {
    let pruned = 0;
    for (const outbox of this.#outboxes.values()) {
      for (const [id, delivery] of outbox.finished) {
        if (pruned === limit) return Promise.resolve(pruned);
        if (
          delivery.status !== "delivered" ||
          (delivery.last_attempt_at ?? 0) >= before
        ) continue;
        outbox.finished.delete(id);
        this.#endpointOf.delete(id);
        outbox.delivered--;
        pruned++;
        // The disabling window counts from the last success, pruned or not.
        outbox.prunedDeliveredAt = Math.max(
          outbox.prunedDeliveredAt,
          delivery.last_attempt_at ?? 0,
        );
      }
    }
    return Promise.resolve(pruned);
  }

  deliveries(
    endpointId: string,
    limit: number,
    status?: DeliveryStatus,
  ): Promise<Delivery[]> {
    const outbox = this.#outboxes.get(endpointId);
    if (!outbox) return Promise.resolve([]);
    const all = [...outbox.finished.values(), ...outbox.pending.values()]
      .filter((d) => status === undefined || d.status === status)
      .sort((a, b) => a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
    return Promise.resolve(
      all.slice(-limit).reverse().map((d) => ({ ...d })),
    );
  }

  delivery(endpointId: string, id: string): Promise<Delivery | undefined> {
    const outbox = this.#outboxes.get(endpointId);
    const found = outbox?.pending.get(id) ?? outbox?.finished.get(id);
    return Promise.resolve(found && { ...found });
  }

  claimDue(
    endpointId: string,
    now: number,
    limit: number,
  ): Promise<Delivery[]> {
    const pending = this.#outboxes.get(endpointId)?.pending.values() ?? [];
    const due = pickDue(pending, this.#held, now, limit);
    for (const delivery of due) this.#held.add(delivery.id);
    return Promise.resolve(due.map((d) => ({ ...d })));
  }

  recordAttempt(id: string, outcome: AttemptOutcome): Promise<boolean> {
    if (!this.#held.delete(id)) return Promise.resolve(false);
    const outbox = this.#outboxes.get(this.#endpointOf.get(id) ?? "");
    const delivery = outbox?.pending.get(id);
    if (!outbox || !delivery) return Promise.resolve(false);
    Object.assign(delivery, outcome, {
      attempts: delivery.attempts + 1,
      last_attempt_at: Date.now(),
    });
    if (delivery.status !== "pending") {
      outbox.pending.delete(id);
      outbox.finished.set(id, delivery);
      if (
        delivery.status === "delivered" && ++outbox.delivered > DELIVERED_KEPT
      ) {
        this.#dropOldestDelivered(outbox);
      }
    }
    return Promise.resolve(true);
  }

  retryNow(
    endpointId: string,
    id: string,
    now: number,
  ): Promise<Delivery | undefined> {
    const outbox = this.#outboxes.get(endpointId);
    const delivery = outbox?.pending.get(id) ?? outbox?.finished.get(id);
    if (!outbox || !delivery) return Promise.resolve(undefined);
    if (outbox.finished.delete(id)) {
      if (delivery.status === "delivered") outbox.delivered--;
      outbox.pending.set(id, delivery);
    }
    delivery.status = "pending";
    delivery.next_attempt_at = now;
    return Promise.resolve({ ...delivery });
  }

  retryFailed(
    endpointId: string,
    since: number,
    now: number,
  ): Promise<number> {
    const outbox = this.#outboxes.get(endpointId);
    let retried = 0;
    for (const [id, delivery] of outbox?.finished ?? []) {
      if (delivery.status !== "failed" || delivery.created_at < since) continue;
      outbox!.finished.delete(id);
      outbox!.pending.set(id, delivery);
      delivery.status = "pending";
      delivery.next_attempt_at = now;
      retried++;
    }
    return Promise.resolve(retried);
  }

  lastDelivered(endpointId: string): Promise<number | null> {
    const outbox = this.#outboxes.get(endpointId);
    let last = outbox?.prunedDeliveredAt ?? 0;
    for (const delivery of outbox?.finished.values() ?? []) {
      if (delivery.status === "delivered") {
        last = Math.max(last, delivery.last_attempt_at ?? 0);
      }
    }
    return Promise.resolve(last || null);
  }

  #dropOldestDelivered(outbox: Outbox): void {
    for (const [id, delivery] of outbox.finished) {
      if (delivery.status !== "delivered") continue;
      outbox.finished.delete(id);
      this.#endpointOf.delete(id);
      outbox.delivered--;
      return;
    }
  }
}

/** A copy the caller may change without changing the one kept. */
function copyEndpoint(endpoint: Endpoint): Endpoint {
  return {
    ...endpoint,
    events: endpoint.events && [...endpoint.events],
    secrets: endpoint.secrets.map((secret) => ({ ...secret })),
  };
}
