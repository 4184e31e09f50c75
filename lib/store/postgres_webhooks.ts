/**
 * Webhook endpoints and the outbox in PostgreSQL. The outbox is written by
 * a trigger in the transaction of each change (schema 6), whichever
 * instance makes it. Every instance sends: a delivery is claimed by one
 * (`FOR UPDATE SKIP LOCKED`), and one claimed by an instance that is no
 * longer live (its lease lapsed, or it deregistered) may be claimed by
 * another. Recording an attempt is fenced by the claim, so a zombie's late
 * answer never marks a message that another instance took over.
 *
 * @module
 */

import type pg from "pg";
import type { Order } from "../orders/order.ts";
import type {
  Delivery,
  DeliveryStatus,
  Endpoint,
  EndpointChanges,
  EndpointSecret,
  WebhookEventType,
} from "../webhooks/model.ts";
import type {
  AttemptOutcome,
  WebhookStore,
} from "../webhooks/webhook_store.ts";
import { orUnavailable } from "./postgres_connection.ts";

interface EndpointRow {
  id: string;
  url: string;
  events: WebhookEventType[] | null;
  description: string | null;
  created_at: string;
  disabled_at: string | null;
  disabled_reason: string | null;
  enabled_at: string | null;
  secrets: EndpointSecret[];
}

interface DeliveryRow {
  id: string;
  endpoint_id: string;
  order_id: string;
  type: WebhookEventType;
  created_at: string;
  order_json: Order;
  status: Delivery["status"];
  attempts: number;
  next_attempt_at: string | null;
  last_attempt_at: string | null;
  last_status: number | null;
  last_error: string | null;
}

const numberOrNull = (value: string | null) =>
  value === null ? null : Number(value);

function toEndpoint(row: EndpointRow): Endpoint {
  return {
    id: row.id,
    url: row.url,
    events: row.events,
    description: row.description,
    created_at: Number(row.created_at),
    disabled_at: numberOrNull(row.disabled_at),
    disabled_reason: row.disabled_reason,
    enabled_at: numberOrNull(row.enabled_at),
    secrets: row.secrets,
  };
}

function toDelivery(row: DeliveryRow): Delivery {
  const order = row.order_json;
  return {
    id: row.id,
    endpoint_id: row.endpoint_id,
    order_id: row.order_id,
    type: row.type,
    created_at: Number(row.created_at),
    order: {
      ...order,
      // jsonb keeps bigints as numbers already; make sure of it.
      created_at: Number(order.created_at),
      updated_at: Number(order.updated_at),
    },
    status: row.status,
    attempts: row.attempts,
    next_attempt_at: numberOrNull(row.next_attempt_at),
    last_attempt_at: numberOrNull(row.last_attempt_at),
    last_status: row.last_status,
    last_error: row.last_error,
  };
}

const DELIVERY_COLUMNS = `id, endpoint_id, order_id, type, created_at,
  order_json, status, attempts, next_attempt_at, last_attempt_at, last_status,
  last_error`;

/** {@linkcode WebhookStore} in a PostgreSQL schema. */
export class PostgresWebhooks implements WebhookStore {
  readonly #pool: pg.Pool;
  readonly #s: string;
  readonly #instanceId: string;

  /** The webhooks of schema `schema`, for instance `instanceId`. */
  constructor(pool: pg.Pool, schema: string, instanceId: string) {
    this.#pool = pool;
    this.#s = `"${schema}"`;
    this.#instanceId = instanceId;
  }

  #query<R extends pg.QueryResultRow>(text: string, values: unknown[] = []) {
    return orUnavailable(() => this.#pool.query<R>(text, values));
  }

  /**
   * Lets go of what an earlier run under this instance id held: with a
   * fixed `INSTANCE_ID` it is live again at once, and would never be
   * presumed dead.
   */
  async releaseOwn(): Promise<void> {
    await this.#query(
      `UPDATE ${this.#s}.webhook_deliveries SET claimed_by = NULL
        WHERE claimed_by = $1`,
      [this.#instanceId],
    );
  }

  onRecorded(): void {
    // Written by a trigger, on any instance: the dispatcher's poll finds them.
  }

  async createEndpoint(endpoint: Endpoint): Promise<void> {
    await this.#query(
      `INSERT INTO ${this.#s}.webhook_endpoints (id, url, events, description,
          created_at, secrets)
        VALUES ($1, $2, $3, $4, $5, $6)`,
      [
        endpoint.id,
        endpoint.url,
        endpoint.events,
        endpoint.description,
        endpoint.created_at,
        JSON.stringify(endpoint.secrets),
      ],
    );
  }

  async endpoints(): Promise<Endpoint[]> {
    const result = await this.#query<EndpointRow>(
      `SELECT * FROM ${this.#s}.webhook_endpoints ORDER BY created_at, id`,
    );
    return result.rows.map(toEndpoint);
  }

  async endpoint(id: string): Promise<Endpoint | undefined> {
    const result = await this.#query<EndpointRow>(
      `SELECT * FROM ${this.#s}.webhook_endpoints WHERE id = $1`,
      [id],
    );
    const row = result.rows[0];
    return row && toEndpoint(row);
  }

  async deleteEndpoint(id: string): Promise<boolean> {
    const result = await this.#query(
      `WITH gone AS (DELETE FROM ${this.#s}.webhook_deliveries
          WHERE endpoint_id = $1)
        DELETE FROM ${this.#s}.webhook_endpoints WHERE id = $1`,
      [id],
    );
    return (result.rowCount ?? 0) > 0;
  }

  async updateEndpoint(
    id: string,
    changes: EndpointChanges,
  ): Promise<Endpoint | undefined> {
    const result = await this.#query<EndpointRow>(
      `UPDATE ${this.#s}.webhook_endpoints SET url = COALESCE($2, url),
          events = CASE WHEN $3 THEN $4::text[] ELSE events END,
          description = CASE WHEN $5 THEN $6 ELSE description END
        WHERE id = $1 RETURNING *`,
      [
        id,
        changes.url ?? null,
        changes.events !== undefined,
        changes.events ?? null,
        changes.description !== undefined,
        changes.description ?? null,
      ],
    );
    const row = result.rows[0];
    return row && toEndpoint(row);
  }

  async setSecrets(
    id: string,
    secrets: EndpointSecret[],
  ): Promise<Endpoint | undefined> {
    const result = await this.#query<EndpointRow>(
      `UPDATE ${this.#s}.webhook_endpoints SET secrets = $2 WHERE id = $1
        RETURNING *`,
      [id, JSON.stringify(secrets)],
    );
    const row = result.rows[0];
    return row && toEndpoint(row);
  }

  async disable(id: string, at: number, reason: string): Promise<void> {
    await this.#query(
      `UPDATE ${this.#s}.webhook_endpoints
          SET disabled_at = $2, disabled_reason = $3
        WHERE id = $1 AND disabled_at IS NULL`,
      [id, at, reason],
    );
  }

  async enable(id: string, at: number): Promise<Endpoint | undefined> {
    await this.#query(
      `UPDATE ${this.#s}.webhook_endpoints
          SET disabled_at = NULL, disabled_reason = NULL, enabled_at = $2
        WHERE id = $1 AND disabled_at IS NOT NULL`,
      [id, at],
    );
    return await this.endpoint(id);
  }

  async prune(before: number, limit: number): Promise<number> {
    const s = this.#s;
    // The endpoint keeps when its newest pruned message was delivered: the
    // disabling window counts from its last success, pruned or not.
    const result = await this.#query<{ pruned: string }>(
      `WITH gone AS (
          DELETE FROM ${s}.webhook_deliveries WHERE seq IN (
            SELECT seq FROM ${s}.webhook_deliveries
            WHERE status = 'delivered' AND last_attempt_at < $1
            ORDER BY last_attempt_at LIMIT $2)
          RETURNING endpoint_id, last_attempt_at),
        newest AS (
          SELECT endpoint_id, max(last_attempt_at) AS at FROM gone
          GROUP BY endpoint_id),
        kept AS (
          UPDATE ${s}.webhook_endpoints e
          SET pruned_delivered_at = GREATEST(e.pruned_delivered_at, newest.at)
          FROM newest WHERE e.id = newest.endpoint_id)
      SELECT count(*) AS pruned FROM gone`,
      [before, limit],
    );
    return Number(result.rows[0]?.pruned ?? 0);
  }

  async deliveries(
    endpointId: string,
    limit: number,
    status?: DeliveryStatus,
  ): Promise<Delivery[]> {
    const result = await this.#query<DeliveryRow>(
      `SELECT ${DELIVERY_COLUMNS} FROM ${this.#s}.webhook_deliveries
        WHERE endpoint_id = $1 AND ($3::text IS NULL OR status = $3)
        ORDER BY seq DESC LIMIT $2`,
      [endpointId, limit, status ?? null],
    );
    return result.rows.map(toDelivery);
  }

  async delivery(
    endpointId: string,
    id: string,
  ): Promise<Delivery | undefined> {
    const result = await this.#query<DeliveryRow>(
      `SELECT ${DELIVERY_COLUMNS} FROM ${this.#s}.webhook_deliveries
        WHERE endpoint_id = $1 AND id = $2`,
      [endpointId, id],
    );
    const row = result.rows[0];
    return row && toDelivery(row);
  }

  async claimDue(
    endpointId: string,
    now: number,
    limit: number,
  ): Promise<Delivery[]> {
    const s = this.#s;
    // Claimable: pending, due, and not held by a live instance; and not
    // behind an earlier pending message of the same order that is held or
    // not yet tried. SKIP LOCKED: instances claiming at once take
    // different rows.
    const result = await this.#query<DeliveryRow>(
      `WITH live AS (
          SELECT id FROM ${s}.instances
          WHERE heartbeat_at >= now() - lease_ms * interval '1 millisecond'
        ),
        due AS (
          SELECT d.seq FROM ${s}.webhook_deliveries d
          WHERE d.endpoint_id = $1 AND d.status = 'pending'
            AND d.next_attempt_at <= $2
            AND (d.claimed_by IS NULL OR d.claimed_by NOT IN (SELECT id FROM live))
            AND NOT EXISTS (
              SELECT 1 FROM ${s}.webhook_deliveries e
              WHERE e.endpoint_id = d.endpoint_id AND e.order_id = d.order_id
                AND e.status = 'pending' AND e.seq < d.seq
                AND (e.attempts = 0 OR e.claimed_by IN (SELECT id FROM live)))
          ORDER BY d.seq
          LIMIT $3
          FOR UPDATE OF d SKIP LOCKED
        )
      UPDATE ${s}.webhook_deliveries w SET claimed_by = $4
        FROM due WHERE w.seq = due.seq
      RETURNING ${
        DELIVERY_COLUMNS.split(",").map((c) => `w.${c.trim()}`).join(", ")
      }`,
      [endpointId, now, limit, this.#instanceId],
    );
    return result.rows.map(toDelivery).sort((a, b) =>
      a.created_at - b.created_at
    );
  }

  async recordAttempt(id: string, outcome: AttemptOutcome): Promise<boolean> {
    // Fenced: only while this instance holds the claim.
    const result = await this.#query(
      `UPDATE ${this.#s}.webhook_deliveries
          SET status = $2, next_attempt_at = $3, last_status = $4,
            last_error = $5, attempts = attempts + 1, last_attempt_at = $6,
            claimed_by = NULL
        WHERE id = $1 AND claimed_by = $7`,
      [
        id,
        outcome.status,
        outcome.next_attempt_at,
        outcome.last_status,
        outcome.last_error,
        Date.now(),
        this.#instanceId,
      ],
    );
    return (result.rowCount ?? 0) === 1;
  }

  async retryFailed(
    endpointId: string,
    since: number,
    now: number,
  ): Promise<number> {
    const result = await this.#query(
      `UPDATE ${this.#s}.webhook_deliveries
          SET status = 'pending', next_attempt_at = $3
        WHERE endpoint_id = $1 AND status = 'failed' AND created_at >= $2`,
      [endpointId, since, now],
    );
    return result.rowCount ?? 0;
  }

  async retryNow(
    endpointId: string,
    id: string,
    now: number,
  ): Promise<Delivery | undefined> {
    const result = await this.#query<DeliveryRow>(
      `UPDATE ${this.#s}.webhook_deliveries
          SET status = 'pending', next_attempt_at = $3
        WHERE endpoint_id = $1 AND id = $2
        RETURNING ${DELIVERY_COLUMNS}`,
      [endpointId, id, now],
    );
    const row = result.rows[0];
    return row && toDelivery(row);
  }

  async lastDelivered(endpointId: string): Promise<number | null> {
    const result = await this.#query<{ at: string | null }>(
      `SELECT GREATEST(
          (SELECT max(last_attempt_at) FROM ${this.#s}.webhook_deliveries
            WHERE endpoint_id = $1 AND status = 'delivered'),
          (SELECT pruned_delivered_at FROM ${this.#s}.webhook_endpoints
            WHERE id = $1)) AS at`,
      [endpointId],
    );
    return numberOrNull(result.rows[0]?.at ?? null);
  }
}
