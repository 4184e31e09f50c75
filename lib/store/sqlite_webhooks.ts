/**
 * Webhook endpoints and the outbox in the SQLite file. The store calls
 * {@linkcode SqliteWebhooks.record} inside the write that makes a change,
 * so the change and its deliveries commit together or not at all. The
 * deliveries in flight are held in the process: one isolate sends a
 * file's outbox, and after a restart nothing is in flight.
 *
 * @module
 */

import type { DatabaseSync, StatementSync } from "node:sqlite";
import type { Order, TimelineEntry } from "../orders/order.ts";
import { pickDue } from "../webhooks/due.ts";
import {
  type Delivery,
  type DeliveryStatus,
  type Endpoint,
  type EndpointChanges,
  type EndpointSecret,
  eventTypesOf,
  listensTo,
  newMessageId,
  type WebhookEventType,
} from "../webhooks/model.ts";
import type {
  AttemptOutcome,
  WebhookStore,
} from "../webhooks/webhook_store.ts";

// Pending deliveries of one endpoint read per claim, oldest first.
const PENDING_SCAN = 1000;

const SQL = {
  enabled: "SELECT id, events FROM webhook_endpoints WHERE disabled_at IS NULL",
  insertDelivery: `INSERT INTO webhook_deliveries (id, endpoint_id, order_id,
      type, created_at, order_json, status, attempts, next_attempt_at)
    VALUES (?, ?, ?, ?, ?, ?, 'pending', 0, ?)`,
  insertEndpoint: `INSERT INTO webhook_endpoints (id, url, events, description,
      created_at, disabled_at, disabled_reason, secrets)
    VALUES (?, ?, ?, ?, ?, NULL, NULL, ?)`,
  endpoints: "SELECT * FROM webhook_endpoints ORDER BY created_at, id",
  endpoint: "SELECT * FROM webhook_endpoints WHERE id = ?",
  deleteDeliveries: "DELETE FROM webhook_deliveries WHERE endpoint_id = ?",
  deleteEndpoint: "DELETE FROM webhook_endpoints WHERE id = ?",
  setSecrets: "UPDATE webhook_endpoints SET secrets = ? WHERE id = ?",
  update: `UPDATE webhook_endpoints SET url = COALESCE(?1, url),
      events = CASE WHEN ?2 THEN ?3 ELSE events END,
      description = CASE WHEN ?4 THEN ?5 ELSE description END
    WHERE id = ?6`,
  disable: `UPDATE webhook_endpoints SET disabled_at = ?, disabled_reason = ?
    WHERE id = ? AND disabled_at IS NULL`,
  enable: `UPDATE webhook_endpoints SET disabled_at = NULL,
      disabled_reason = NULL, enabled_at = ?
    WHERE id = ? AND disabled_at IS NOT NULL`,
  prunable: `SELECT seq, endpoint_id, last_attempt_at FROM webhook_deliveries
    WHERE status = 'delivered' AND last_attempt_at < ?
    ORDER BY last_attempt_at LIMIT ?`,
  pruneOne: "DELETE FROM webhook_deliveries WHERE seq = ?",
  keepLastDelivered: `UPDATE webhook_endpoints
    SET pruned_delivered_at = MAX(COALESCE(pruned_delivered_at, 0), ?)
    WHERE id = ?`,
  latest:
    "SELECT * FROM webhook_deliveries WHERE endpoint_id = ? ORDER BY seq DESC LIMIT ?",
  latestIn:
    `SELECT * FROM webhook_deliveries WHERE endpoint_id = ? AND status = ?
    ORDER BY seq DESC LIMIT ?`,
  delivery: "SELECT * FROM webhook_deliveries WHERE endpoint_id = ? AND id = ?",
  pending: `SELECT * FROM webhook_deliveries
    WHERE endpoint_id = ? AND status = 'pending' ORDER BY seq LIMIT ?`,
  record: `UPDATE webhook_deliveries SET status = ?, next_attempt_at = ?,
      last_status = ?, last_error = ?, attempts = attempts + 1,
      last_attempt_at = ?
    WHERE id = ?`,
  retryFailed: `UPDATE webhook_deliveries SET status = 'pending',
      next_attempt_at = ?
    WHERE endpoint_id = ? AND status = 'failed' AND created_at >= ?`,
  retryNow: `UPDATE webhook_deliveries SET status = 'pending',
      next_attempt_at = ? WHERE endpoint_id = ? AND id = ?`,
  lastDelivered: `SELECT MAX(
      COALESCE((SELECT MAX(last_attempt_at) FROM webhook_deliveries
        WHERE endpoint_id = ?1 AND status = 'delivered'), 0),
      COALESCE((SELECT pruned_delivered_at FROM webhook_endpoints
        WHERE id = ?1), 0)) AS at`,
} as const;

interface EndpointRow {
  id: string;
  url: string;
  events: string | null;
  description: string | null;
  created_at: number;
  disabled_at: number | null;
  disabled_reason: string | null;
  enabled_at: number | null;
  secrets: string;
}

interface DeliveryRow {
  id: string;
  endpoint_id: string;
  order_id: string;
  type: WebhookEventType;
  created_at: number;
  order_json: string;
  status: Delivery["status"];
  attempts: number;
  next_attempt_at: number | null;
  last_attempt_at: number | null;
  last_status: number | null;
  last_error: string | null;
}

function toEndpoint(row: EndpointRow): Endpoint {
  return {
    id: row.id,
    url: row.url,
    events: row.events === null ? null : JSON.parse(row.events),
    description: row.description,
    created_at: row.created_at,
    disabled_at: row.disabled_at,
    disabled_reason: row.disabled_reason,
    enabled_at: row.enabled_at,
    secrets: JSON.parse(row.secrets),
  };
}

function toDelivery(row: DeliveryRow): Delivery {
  const { order_json, ...rest } = row;
  return { ...rest, order: JSON.parse(order_json) };
}

/** How the store runs a read and a write (its group commit). */
export interface SqliteAccess {
  read<T>(query: () => T): Promise<T>;
  write<T>(apply: () => T): Promise<T>;
  now(): number;
}

/** {@linkcode WebhookStore} in a SQLite file. */
export class SqliteWebhooks implements WebhookStore {
  readonly #statements: Record<keyof typeof SQL, StatementSync>;
  readonly #access: SqliteAccess;
  readonly #held = new Set<string>();
  #wake: () => void = () => {};

  /** Prepares the statements on `db` (migrated). */
  constructor(db: DatabaseSync, access: SqliteAccess) {
    this.#statements = Object.fromEntries(
      Object.entries(SQL).map(([name, sql]) => [name, db.prepare(sql)]),
    ) as Record<keyof typeof SQL, StatementSync>;
    this.#access = access;
  }

  /**
   * Writes the deliveries a change makes; inside the store's write, so in
   * its transaction. Returns whether it wrote any.
   */
  record(
    order: Order,
    created: boolean,
    added: readonly TimelineEntry[],
  ): boolean {
    const types = eventTypesOf(created, added);
    if (types.length === 0) return false;
    const rows = this.#statements.enabled.all() as Array<
      { id: string; events: string | null }
    >;
    if (rows.length === 0) return false;
    const endpoints = rows.map((row) => ({
      id: row.id,
      events: row.events === null
        ? null
        : JSON.parse(row.events) as WebhookEventType[],
    }));
    let wrote = false;
    const json = JSON.stringify(order);
    for (const type of types) {
      for (const endpoint of endpoints) {
        if (!listensTo(endpoint.events, type)) continue;
        this.#statements.insertDelivery.run(
          newMessageId(),
          endpoint.id,
          order.id,
          type,
          order.updated_at,
          json,
          order.updated_at,
        );
        wrote = true;
      }
    }
    return wrote;
  }

  /** Tells the dispatcher (after the commit) that deliveries were written. */
  recorded(): void {
    this.#wake();
  }

  onRecorded(wake: () => void): void {
    this.#wake = wake;
  }

  createEndpoint(endpoint: Endpoint): Promise<void> {
    return this.#access.write(() => {
      this.#statements.insertEndpoint.run(
        endpoint.id,
        endpoint.url,
        endpoint.events === null ? null : JSON.stringify(endpoint.events),
        endpoint.description,
        endpoint.created_at,
        JSON.stringify(endpoint.secrets),
      );
    });
  }

  endpoints(): Promise<Endpoint[]> {
    return this.#access.read(() =>
      (this.#statements.endpoints.all() as unknown as EndpointRow[]).map(
        toEndpoint,
      )
    );
  }

  endpoint(id: string): Promise<Endpoint | undefined> {
    return this.#access.read(() => {
      const row = this.#statements.endpoint.get(id) as EndpointRow | undefined;
      return row && toEndpoint(row);
    });
  }

  deleteEndpoint(id: string): Promise<boolean> {
    return this.#access.write(() => {
      this.#statements.deleteDeliveries.run(id);
      return this.#statements.deleteEndpoint.run(id).changes > 0;
    });
  }

  async updateEndpoint(
    id: string,
    changes: EndpointChanges,
  ): Promise<Endpoint | undefined> {
    await this.#access.write(() =>
      this.#statements.update.run(
        changes.url ?? null,
        changes.events !== undefined ? 1 : 0,
        changes.events ? JSON.stringify(changes.events) : null,
        changes.description !== undefined ? 1 : 0,
        changes.description ?? null,
        id,
      )
    );
    return await this.endpoint(id);
  }

  async setSecrets(
    id: string,
    secrets: EndpointSecret[],
  ): Promise<Endpoint | undefined> {
    await this.#access.write(() =>
      this.#statements.setSecrets.run(JSON.stringify(secrets), id)
    );
    return await this.endpoint(id);
  }

  async disable(id: string, at: number, reason: string): Promise<void> {
    await this.#access.write(() =>
      this.#statements.disable.run(at, reason, id)
    );
  }

  async enable(id: string, at: number): Promise<Endpoint | undefined> {
    await this.#access.write(() => this.#statements.enable.run(at, id));
    return await this.endpoint(id);
  }

  prune(before: number, limit: number): Promise<number> {
    return this.#access.write(() => {
      const rows = this.#statements.prunable.all(before, limit) as Array<
        { seq: number; endpoint_id: string; last_attempt_at: number }
      >;
      // The endpoint keeps when its newest pruned message was delivered:
      // the disabling window counts from its last success, pruned or not.
      const newest = new Map<string, number>();
      for (const row of rows) {
        this.#statements.pruneOne.run(row.seq);
        newest.set(
          row.endpoint_id,
          Math.max(newest.get(row.endpoint_id) ?? 0, row.last_attempt_at),
        );
      }
      for (const [endpointId, at] of newest) {
        this.#statements.keepLastDelivered.run(at, endpointId);
      }
      return rows.length;
    });
  }

  deliveries(
    endpointId: string,
    limit: number,
    status?: DeliveryStatus,
  ): Promise<Delivery[]> {
    return this.#access.read(() =>
      ((status === undefined
        ? this.#statements.latest.all(endpointId, limit)
        : this.#statements.latestIn.all(
          endpointId,
          status,
          limit,
        )) as unknown as DeliveryRow[])
        .map(toDelivery)
    );
  }

  delivery(endpointId: string, id: string): Promise<Delivery | undefined> {
    return this.#access.read(() => {
      const row = this.#statements.delivery.get(endpointId, id) as
        | DeliveryRow
        | undefined;
      return row && toDelivery(row);
    });
  }

  async claimDue(
    endpointId: string,
    now: number,
    limit: number,
  ): Promise<Delivery[]> {
    const pending = await this.#access.read(() =>
      this.#statements.pending.all(
        endpointId,
        PENDING_SCAN,
      ) as unknown as DeliveryRow[]
    );
    // Synchronous from here: no other claim can interleave.
    const due = pickDue(pending, this.#held, now, limit);
    for (const row of due) this.#held.add(row.id);
    return due.map(toDelivery);
  }

  async recordAttempt(id: string, outcome: AttemptOutcome): Promise<boolean> {
    if (!this.#held.has(id)) return false;
    try {
      await this.#access.write(() =>
        this.#statements.record.run(
          outcome.status,
          outcome.next_attempt_at,
          outcome.last_status,
          outcome.last_error,
          this.#access.now(),
          id,
        )
      );
      return true;
    } finally {
      // Held until recorded, or until the write fails: then it is pending
      // as before, and is tried again.
      this.#held.delete(id);
    }
  }

  retryFailed(
    endpointId: string,
    since: number,
    now: number,
  ): Promise<number> {
    return this.#access.write(() =>
      Number(
        this.#statements.retryFailed.run(now, endpointId, since).changes,
      )
    );
  }

  async retryNow(
    endpointId: string,
    id: string,
    now: number,
  ): Promise<Delivery | undefined> {
    await this.#access.write(() =>
      this.#statements.retryNow.run(now, endpointId, id)
    );
    return await this.delivery(endpointId, id);
  }

  lastDelivered(endpointId: string): Promise<number | null> {
    return this.#access.read(() =>
      (this.#statements.lastDelivered.get(endpointId) as { at: number }).at ||
      null
    );
  }
}
