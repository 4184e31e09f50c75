/**
 * The PostgreSQL store's schema: its versions and the migrations between
 * them, run under an advisory lock so that instances starting together
 * take turns.
 *
 * @module
 */

// @ts-types="npm:@types/pg@8.23.1"
import type pg from "pg";
import { StoreOpenError } from "../orders/errors.ts";
import { inTransaction } from "./postgres_connection.ts";

/** The NOTIFY channel that carries new events' sequence numbers. */
export function eventsChannel(schema: string): string {
  return `${schema}_events`;
}

/** The NOTIFY channel that says unclaimed orders may be waiting. */
export function workChannel(schema: string): string {
  return `${schema}_work`;
}

/**
 * Each migration takes the schema from the version before it to its index
 * + 1. `s` is the quoted schema name; `name` the bare one.
 */
const MIGRATIONS: ReadonlyArray<(s: string, name: string) => string[]> = [
  // 1: orders.
  (s) => [
    `CREATE TABLE ${s}.orders (
      id text PRIMARY KEY,
      customer_id text NOT NULL,
      restaurant_id text NOT NULL,
      items jsonb NOT NULL,
      status text NOT NULL,
      created_at bigint NOT NULL,
      updated_at bigint NOT NULL,
      attempts integer NOT NULL,
      failure_reason text,
      cancel_requested boolean NOT NULL,
      timeline jsonb NOT NULL,
      idempotency_key text UNIQUE
    )`,
    `CREATE INDEX orders_status_id ON ${s}.orders (status, id)`,
  ],
  // 2: claims and instances; the event table every change writes to.
  (s) => [
    // claim_epoch is the fencing token: it grows at every claim and every
    // rescue, and every worker change is conditional on it.
    // last_change: the token of the last change applied, so that a retry
    // of a change whose first try committed unheard is not applied twice.
    `ALTER TABLE ${s}.orders ADD COLUMN claimed_by text,
       ADD COLUMN claim_epoch bigint NOT NULL DEFAULT 0,
       ADD COLUMN last_change text`,
    `CREATE INDEX orders_unclaimed ON ${s}.orders (id)
       WHERE status = 'pending' AND claimed_by IS NULL`,
    `CREATE INDEX orders_claimed_by ON ${s}.orders (claimed_by)
       WHERE claimed_by IS NOT NULL`,
    `CREATE TABLE ${s}.instances (
      id text PRIMARY KEY,
      started_at timestamptz NOT NULL DEFAULT now(),
      heartbeat_at timestamptz NOT NULL DEFAULT now(),
      lease_ms integer NOT NULL,
      status jsonb NOT NULL DEFAULT '{}'
    )`,
    // xid is the writing transaction's: readers follow (xid, seq) below
    // the oldest running transaction, so that an event whose transaction
    // commits late can never be passed over (a bigserial alone is drawn
    // before commit, and commits land out of order).
    `CREATE TABLE ${s}.events (
      seq bigserial PRIMARY KEY,
      xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
      order_id text NOT NULL,
      name text NOT NULL,
      "order" jsonb NOT NULL,
      instance text NOT NULL
    )`,
    `CREATE INDEX events_feed ON ${s}.events (xid, seq)`,
    // In the database, so that no write can change an order without its
    // event: one row per new timeline entry ('created' for a new order),
    // in the same transaction. No NOTIFY here: PostgreSQL serialises the
    // commits of notifying transactions (a database-wide lock held through
    // the commit), which capped POST /orders at ~1,200 req/s against
    // ~2,100 without; the writing instance notifies instead, at most once
    // per few milliseconds (postgres_feed.ts).
    `CREATE FUNCTION ${s}.record_events() RETURNS trigger
     LANGUAGE plpgsql AS $fn$
     DECLARE
       before integer := 0;
       after integer := jsonb_array_length(NEW.timeline);
       snapshot jsonb;
       origin text := coalesce(current_setting('order_service.instance', true), '');
     BEGIN
       IF TG_OP = 'UPDATE' THEN
         before := jsonb_array_length(OLD.timeline);
         IF after <= before THEN RETURN NULL; END IF;
       END IF;
       snapshot := jsonb_build_object(
         'id', NEW.id, 'customer_id', NEW.customer_id,
         'restaurant_id', NEW.restaurant_id, 'items', NEW.items,
         'status', NEW.status, 'created_at', NEW.created_at,
         'updated_at', NEW.updated_at, 'attempts', NEW.attempts,
         'failure_reason', NEW.failure_reason,
         'cancel_requested', NEW.cancel_requested, 'timeline', NEW.timeline);
       IF TG_OP = 'INSERT' THEN
         INSERT INTO ${s}.events (order_id, name, "order", instance)
           VALUES (NEW.id, 'created', snapshot, origin);
       ELSE
         FOR position IN before .. after - 1 LOOP
           INSERT INTO ${s}.events (order_id, name, "order", instance)
             VALUES (NEW.id, NEW.timeline -> position ->> 'type', snapshot, origin);
         END LOOP;
       END IF;
       RETURN NULL;
     END
     $fn$`,
    `CREATE TRIGGER orders_record_events
       AFTER INSERT OR UPDATE ON ${s}.orders
       FOR EACH ROW EXECUTE FUNCTION ${s}.record_events()`,
  ],
  // 3: an event keeps what the change set, not a copy of the order. An
  // order's id, customer, restaurant, items and creation time never change
  // and its timeline only grows, so the order as it was at an event is the
  // order's row with its timeline cut to the event's `entries`, and the
  // event's own status, times, attempts, reason and cancel flag. The copy
  // was most of each event row, and written again at every change: 1.5 KB
  // of WAL an order, half of it events, for POSTs whose commits wait on
  // WAL sync (pg_stat_wal, track_wal_io_timing). Rows written before keep
  // their copy in "order" and are read as they are.
  // Also: the idempotency key's unique index holds only orders that have
  // a key, instead of a NULL entry for every order.
  (s) => [
    `ALTER TABLE ${s}.orders DROP CONSTRAINT orders_idempotency_key_key`,
    `CREATE UNIQUE INDEX orders_idempotency_key ON ${s}.orders
       (idempotency_key) WHERE idempotency_key IS NOT NULL`,
    `ALTER TABLE ${s}.events ALTER COLUMN "order" DROP NOT NULL,
       ADD COLUMN status text,
       ADD COLUMN updated_at bigint,
       ADD COLUMN attempts integer,
       ADD COLUMN failure_reason text,
       ADD COLUMN cancel_requested boolean,
       ADD COLUMN entries integer`,
    `CREATE OR REPLACE FUNCTION ${s}.record_events() RETURNS trigger
     LANGUAGE plpgsql AS $fn$
     DECLARE
       before integer := 0;
       after integer := jsonb_array_length(NEW.timeline);
       origin text := coalesce(current_setting('order_service.instance', true), '');
     BEGIN
       IF TG_OP = 'UPDATE' THEN
         before := jsonb_array_length(OLD.timeline);
         IF after <= before THEN RETURN NULL; END IF;
       END IF;
       IF TG_OP = 'INSERT' THEN
         INSERT INTO ${s}.events (order_id, name, instance, status,
             updated_at, attempts, failure_reason, cancel_requested, entries)
           VALUES (NEW.id, 'created', origin, NEW.status, NEW.updated_at,
             NEW.attempts, NEW.failure_reason, NEW.cancel_requested, after);
       ELSE
         FOR position IN before .. after - 1 LOOP
           INSERT INTO ${s}.events (order_id, name, instance, status,
               updated_at, attempts, failure_reason, cancel_requested, entries)
             VALUES (NEW.id, NEW.timeline -> position ->> 'type', origin,
               NEW.status, NEW.updated_at, NEW.attempts, NEW.failure_reason,
               NEW.cancel_requested, after);
         END LOOP;
       END IF;
       RETURN NULL;
     END
     $fn$`,
  ],
  // 4: finding one customer's or one restaurant's orders, in id order.
  (s) => [
    `CREATE INDEX orders_customer_id ON ${s}.orders (customer_id, id)`,
    `CREATE INDEX orders_restaurant_id ON ${s}.orders (restaurant_id, id)`,
  ],
  // 5: what operators set that outlives a request (control_records.ts).
  (s) => [
    `CREATE TABLE ${s}.control (name text PRIMARY KEY, value text NOT NULL)`,
  ],
  // 6: webhook endpoints, and the outbox of their deliveries. A trigger
  // writes a change's deliveries in the change's own transaction, as the
  // events trigger writes its events: no change without its messages,
  // whichever instance made it. claimed_by: the instance sending it now.
  (s) => [
    `CREATE TABLE ${s}.webhook_endpoints (
      id text PRIMARY KEY,
      url text NOT NULL,
      events text[],
      description text,
      created_at bigint NOT NULL,
      disabled_at bigint,
      disabled_reason text,
      secrets jsonb NOT NULL
    )`,
    `CREATE TABLE ${s}.webhook_deliveries (
      seq bigserial PRIMARY KEY,
      id text NOT NULL UNIQUE,
      endpoint_id text NOT NULL,
      order_id text NOT NULL,
      type text NOT NULL,
      created_at bigint NOT NULL,
      order_json jsonb NOT NULL,
      status text NOT NULL,
      attempts integer NOT NULL DEFAULT 0,
      next_attempt_at bigint,
      last_attempt_at bigint,
      last_status integer,
      last_error text,
      claimed_by text
    )`,
    // The trigger's look for enabled endpoints, on every change, is an
    // index scan: the write sessions turn sequential scans off, and a
    // sequential scan's cost then crosses the JIT threshold, compiling the
    // query at every write (120 ms each, EXPLAIN ANALYZE).
    `CREATE INDEX webhook_endpoints_enabled ON ${s}.webhook_endpoints (id)
       WHERE disabled_at IS NULL`,
    `CREATE INDEX webhook_deliveries_pending ON ${s}.webhook_deliveries
       (endpoint_id, seq) WHERE status = 'pending'`,
    `CREATE INDEX webhook_deliveries_by_endpoint ON ${s}.webhook_deliveries
       (endpoint_id, seq)`,
    `CREATE FUNCTION ${s}.record_webhooks() RETURNS trigger
     LANGUAGE plpgsql AS $fn$
     DECLARE
       before integer := 0;
       after integer := jsonb_array_length(NEW.timeline);
       entry jsonb;
       kind text;
       snapshot jsonb;
     BEGIN
       -- No endpoint: nothing to write (one index probe per change).
       PERFORM 1 FROM ${s}.webhook_endpoints WHERE disabled_at IS NULL LIMIT 1;
       IF NOT FOUND THEN RETURN NULL; END IF;
       IF TG_OP = 'UPDATE' THEN
         before := jsonb_array_length(OLD.timeline);
         IF after <= before THEN RETURN NULL; END IF;
       END IF;
       snapshot := jsonb_build_object(
         'id', NEW.id, 'customer_id', NEW.customer_id,
         'restaurant_id', NEW.restaurant_id, 'items', NEW.items,
         'status', NEW.status, 'created_at', NEW.created_at,
         'updated_at', NEW.updated_at, 'attempts', NEW.attempts,
         'failure_reason', NEW.failure_reason,
         'cancel_requested', NEW.cancel_requested, 'timeline', NEW.timeline);
       FOR position IN (CASE WHEN TG_OP = 'INSERT' THEN -1 ELSE before END) .. after - 1 LOOP
         IF position = -1 THEN
           kind := 'order.created';
         ELSE
           entry := NEW.timeline -> position;
           IF entry ->> 'type' = 'attempt_failed' THEN
             kind := 'order.attempt_failed';
           ELSIF entry ->> 'type' = 'status' AND entry ->> 'status' <> 'pending' THEN
             kind := 'order.' || (entry ->> 'status');
           ELSE
             CONTINUE;
           END IF;
         END IF;
         INSERT INTO ${s}.webhook_deliveries (id, endpoint_id, order_id, type,
             created_at, order_json, status, attempts, next_attempt_at)
           SELECT 'msg_' || upper(substr(replace(gen_random_uuid()::text, '-', ''), 1, 26)),
             e.id, NEW.id, kind, NEW.updated_at, snapshot, 'pending', 0,
             NEW.updated_at
           FROM ${s}.webhook_endpoints e
           WHERE e.disabled_at IS NULL AND (e.events IS NULL OR kind = ANY (e.events))
           ORDER BY e.id;
         -- An INSERT has one message; its timeline's entry is its creation.
         EXIT WHEN position = -1;
       END LOOP;
       RETURN NULL;
     END
     $fn$`,
    `CREATE TRIGGER orders_record_webhooks
       AFTER INSERT OR UPDATE ON ${s}.orders
       FOR EACH ROW EXECUTE FUNCTION ${s}.record_webhooks()`,
  ],
  // 7: an endpoint enabled again by hand; the pruning of delivered messages.
  (s) => [
    `ALTER TABLE ${s}.webhook_endpoints ADD COLUMN enabled_at bigint,
       ADD COLUMN pruned_delivered_at bigint`,
    `CREATE INDEX webhook_deliveries_delivered ON ${s}.webhook_deliveries
       (last_attempt_at) WHERE status = 'delivered'`,
  ],
];

/** The schema version this release creates and understands. */
export const POSTGRES_SCHEMA_VERSION = MIGRATIONS.length;

/**
 * Creates the schema or brings it to {@linkcode POSTGRES_SCHEMA_VERSION}.
 *
 * @throws {StoreOpenError} when the schema is newer than this release.
 */
export async function migrate(pool: pg.Pool, schema: string): Promise<void> {
  const quoted = `"${schema}"`;
  await inTransaction(pool, async (client) => {
    // Instances that start together take turns; the lock ends with the
    // transaction.
    await client.query("SELECT pg_advisory_xact_lock(hashtext($1))", [
      `order-service:${schema}`,
    ]);
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${quoted}`);
    await client.query(
      `CREATE TABLE IF NOT EXISTS ${quoted}.schema_version (version integer NOT NULL)`,
    );
    const result = await client.query<{ version: number }>(
      `SELECT version FROM ${quoted}.schema_version`,
    );
    const row = result.rows[0];
    const version = row?.version ?? 0;
    if (version > POSTGRES_SCHEMA_VERSION) {
      throw new StoreOpenError(
        `the PostgreSQL schema "${schema}"`,
        `its version ${version} is newer than this release understands (${POSTGRES_SCHEMA_VERSION}); upgrade order-service`,
      );
    }
    if (version === POSTGRES_SCHEMA_VERSION) return;
    for (const migration of MIGRATIONS.slice(version)) {
      for (const statement of migration(quoted, schema)) {
        await client.query(statement);
      }
    }
    await client.query(
      row
        ? `UPDATE ${quoted}.schema_version SET version = $1`
        : `INSERT INTO ${quoted}.schema_version VALUES ($1)`,
      [POSTGRES_SCHEMA_VERSION],
    );
  });
}
