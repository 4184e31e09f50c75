/**
 * Webhooks where the isolates divide the orders (`PARALLEL` on the memory
 * store). Each isolate keeps its own outbox, written in the same step as
 * its own orders' changes, and its own dispatcher sends it. The endpoints
 * are kept in every isolate alike: a change to one (registration, removal,
 * a new secret, disabling, enabling) is made in every isolate, so that
 * each records and signs its messages as the others do. Reads of the
 * deliveries gather every isolate's.
 *
 * @module
 */

import { StoreUnavailableError } from "../orders/errors.ts";
import type {
  Delivery,
  DeliveryStatus,
  Endpoint,
  EndpointChanges,
  EndpointSecret,
} from "../webhooks/model.ts";
import type {
  AttemptOutcome,
  WebhookStore,
} from "../webhooks/webhook_store.ts";

/** The methods one isolate asks of another's own webhooks. */
export const REMOTE_WEBHOOK_METHODS = [
  "createEndpoint",
  "deleteEndpoint",
  "updateEndpoint",
  "setSecrets",
  "disable",
  "enable",
  "deliveries",
  "delivery",
  "retryNow",
  "retryFailed",
  "lastDelivered",
] as const;

/** One of {@linkcode REMOTE_WEBHOOK_METHODS}, with its arguments. */
export interface RemoteWebhookCall {
  method: typeof REMOTE_WEBHOOK_METHODS[number];
  args: unknown[];
}

/** Runs a call on another isolate's own webhooks. */
export type RemoteWebhooks = (
  isolate: number,
  call: RemoteWebhookCall,
) => Promise<unknown>;

/** {@linkcode WebhookStore} over this isolate's outbox and the others'. */
export class ShardedWebhooks implements WebhookStore {
  readonly #local: WebhookStore;
  readonly #others: number[];
  readonly #remote: RemoteWebhooks;

  /** This isolate's webhooks, and how to reach the `others`. */
  constructor(local: WebhookStore, others: number[], remote: RemoteWebhooks) {
    this.#local = local;
    this.#others = others;
    // An isolate that cannot answer (one stopping) is a store that cannot:
    // a 503 to the caller, not a 500.
    this.#remote = (isolate, call) =>
      remote(isolate, call).catch((error: Error) => {
        throw new StoreUnavailableError(
          `isolate ${isolate} did not answer: ${error.message}`,
        );
      });
  }

  /** Makes a change to the endpoints here and in every other isolate. */
  async #everywhere<T>(
    here: () => Promise<T>,
    call: RemoteWebhookCall,
  ): Promise<T> {
    const [result] = await this.#everywhereAll(here, call);
    return result as T;
  }

  /** Runs a call here and in every other isolate; every answer. */
  #everywhereAll(
    here: () => Promise<unknown>,
    call: RemoteWebhookCall,
  ): Promise<unknown[]> {
    return Promise.all([
      here(),
      ...this.#others.map((isolate) => this.#remote(isolate, call)),
    ]);
  }

  /** Asks every other isolate. */
  #askOthers(call: RemoteWebhookCall): Promise<unknown[]> {
    return Promise.all(
      this.#others.map((isolate) => this.#remote(isolate, call)),
    );
  }

  createEndpoint(endpoint: Endpoint): Promise<void> {
    return this.#everywhere(() => this.#local.createEndpoint(endpoint), {
      method: "createEndpoint",
      args: [endpoint],
    });
  }

  endpoints(): Promise<Endpoint[]> {
    return this.#local.endpoints();
  }

  endpoint(id: string): Promise<Endpoint | undefined> {
    return this.#local.endpoint(id);
  }

  deleteEndpoint(id: string): Promise<boolean> {
    return this.#everywhere(() => this.#local.deleteEndpoint(id), {
      method: "deleteEndpoint",
      args: [id],
    });
  }

  updateEndpoint(
    id: string,
    changes: EndpointChanges,
  ): Promise<Endpoint | undefined> {
    return this.#everywhere(() => this.#local.updateEndpoint(id, changes), {
      method: "updateEndpoint",
      args: [id, changes],
    });
  }

  setSecrets(
    id: string,
    secrets: EndpointSecret[],
  ): Promise<Endpoint | undefined> {
    return this.#everywhere(() => this.#local.setSecrets(id, secrets), {
      method: "setSecrets",
      args: [id, secrets],
    });
  }

  disable(id: string, at: number, reason: string): Promise<void> {
    return this.#everywhere(() => this.#local.disable(id, at, reason), {
      method: "disable",
      args: [id, at, reason],
    });
  }

  enable(id: string, at: number): Promise<Endpoint | undefined> {
    return this.#everywhere(() => this.#local.enable(id, at), {
      method: "enable",
      args: [id, at],
    });
  }

  async deliveries(
    endpointId: string,
    limit: number,
    status?: DeliveryStatus,
  ): Promise<Delivery[]> {
    const [here, there] = await Promise.all([
      this.#local.deliveries(endpointId, limit, status),
      this.#askOthers({
        method: "deliveries",
        args: [endpointId, limit, status],
      }),
    ]);
    // Newest first across the isolates, as each gives its own.
    return [here, ...(there as Delivery[][])].flat()
      .sort((a, b) => b.created_at - a.created_at || (a.id < b.id ? 1 : -1))
      .slice(0, limit);
  }

  /** A delivery's call, made here or else in the isolate that holds it. */
  async #whereItLives(
    here: () => Promise<Delivery | undefined>,
    call: RemoteWebhookCall,
  ): Promise<Delivery | undefined> {
    const found = await here();
    if (found) return found;
    const there = await this.#askOthers(call) as Array<Delivery | undefined>;
    return there.find((delivery) => delivery !== undefined);
  }

  delivery(endpointId: string, id: string): Promise<Delivery | undefined> {
    return this.#whereItLives(() => this.#local.delivery(endpointId, id), {
      method: "delivery",
      args: [endpointId, id],
    });
  }

  retryNow(
    endpointId: string,
    id: string,
    now: number,
  ): Promise<Delivery | undefined> {
    // The isolate that holds it makes it due (and wakes its dispatcher).
    return this.#whereItLives(
      () => this.#local.retryNow(endpointId, id, now),
      { method: "retryNow", args: [endpointId, id, now] },
    );
  }

  async retryFailed(
    endpointId: string,
    since: number,
    now: number,
  ): Promise<number> {
    // Each isolate its own failures (and each wakes its dispatcher).
    const counts = await this.#everywhereAll(
      () => this.#local.retryFailed(endpointId, since, now),
      { method: "retryFailed", args: [endpointId, since, now] },
    ) as number[];
    return counts.reduce((sum, count) => sum + count, 0);
  }

  async lastDelivered(endpointId: string): Promise<number | null> {
    // The endpoint's last success, whichever isolate had it: one isolate
    // whose messages have all failed so far does not make it dead.
    const all = [
      await this.#local.lastDelivered(endpointId),
      ...await this.#askOthers({
        method: "lastDelivered",
        args: [endpointId],
      }) as Array<number | null>,
    ].filter((at): at is number => at !== null);
    return all.length === 0 ? null : Math.max(...all);
  }

  // This isolate's own outbox, sent by its own dispatcher.

  claimDue(
    endpointId: string,
    now: number,
    limit: number,
  ): Promise<Delivery[]> {
    return this.#local.claimDue(endpointId, now, limit);
  }

  recordAttempt(id: string, outcome: AttemptOutcome): Promise<boolean> {
    return this.#local.recordAttempt(id, outcome);
  }

  prune(before: number, limit: number): Promise<number> {
    return this.#local.prune(before, limit);
  }

  onRecorded(wake: () => void): void {
    this.#local.onRecorded(wake);
  }
}

/**
 * Runs a call from another isolate on this isolate's own webhooks;
 * `wake` is told when it may have made a message due here.
 */
export async function serveWebhookCall(
  local: WebhookStore,
  call: RemoteWebhookCall,
  wake: () => void,
): Promise<unknown> {
  if (!REMOTE_WEBHOOK_METHODS.includes(call.method)) {
    throw new RangeError(`Unknown webhook call "${call.method}"`);
  }
  const method = local[call.method] as (...args: unknown[]) => Promise<unknown>;
  const result = await method.apply(local, call.args);
  if (
    call.method === "retryNow" || call.method === "retryFailed" ||
    call.method === "enable" || call.method === "createEndpoint"
  ) wake();
  return result;
}
