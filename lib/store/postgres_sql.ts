/**
 * The PostgreSQL store's SQL, in one place: each statement is built by a
 * small function from the schema's names, so a reader sees every query
 * the store sends here, and the code that runs them says only which.
 *
 * @module
 */

import type { ListOptions } from "../orders/order_store.ts";
import { listConditions } from "./list_sql.ts";

/**
 * The write statement's name: prepared once per connection of the write
 * pool, then only bound and executed: parsing, analysing and planning it
 * were a large share of PostgreSQL's CPU under load (perf) and of a
 * statement's time.
 */
export const WRITE_STATEMENT = "order_service_write";

/**
 * Settings of the write pool's sessions. A prepared statement soon runs a
 * generic plan, made once and kept while the table grows; made while the
 * table was young, that plan scanned the whole table for every change (seen
 * with auto_explain on a large table). The
 * write statement reaches orders only by id, so with sequential scans off
 * its plan is an index scan however small the table looked.
 */
export const WRITE_SESSION_SETTINGS = "-c enable_seqscan=off";

/** The columns an API order has (not the claim's). */
export const ORDER_COLUMNS = `id, customer_id, restaurant_id, items, status,
  created_at, updated_at, attempts, failure_reason, cancel_requested, timeline`;

/**
 * The statement that writes a batch: the creates' INSERT and the changes'
 * UPDATE as two parts of one query over `table` (see the write batcher).
 * The UPDATE's SET mirrors `applyTransition` (`orders/transition.ts`), and
 * its WHERE `refuseTransition` plus the fence; the contract test "applies
 * every change as applyTransition does" fails if they drift apart.
 */
export function writeStatement(table: string): string {
  return `WITH created AS (
           INSERT INTO ${table}
             (id, customer_id, restaurant_id, items, status, created_at,
              updated_at, attempts, failure_reason, cancel_requested, timeline,
              idempotency_key, claimed_by, claim_epoch)
           SELECT r.id, r.customer_id, r.restaurant_id, r.items, 'pending', $2,
             $2, 0, NULL, false, $3::jsonb, r.key, $4, 1
           FROM jsonb_to_recordset($1::jsonb)
             AS r(id text, customer_id text, restaurant_id text, items jsonb,
                  key text)
           ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL
             DO NOTHING
           RETURNING NULL::integer AS i, id, NULL::text, NULL::text,
             NULL::jsonb, NULL::text, NULL::bigint, NULL::bigint,
             NULL::integer, NULL::text, NULL::boolean, NULL::jsonb
         ), changed AS (
           UPDATE ${table} AS o SET
             status = coalesce(c.to, o.status),
             updated_at = greatest($2::bigint, o.created_at),
             attempts = CASE WHEN c.attempts IS NOT NULL THEN c.attempts
               WHEN c.increment THEN o.attempts + 1 ELSE o.attempts END,
             failure_reason = CASE WHEN c.set_reason THEN c.reason
               ELSE o.failure_reason END,
             cancel_requested = coalesce(c.cancel, o.cancel_requested),
             timeline = o.timeline
               || coalesce((SELECT jsonb_agg(entry || jsonb_build_object(
                    'at', greatest($2::bigint, o.created_at)))
                  FROM jsonb_array_elements(c.append) AS entry), '[]')
               || CASE WHEN c.to IS NOT NULL AND c.to <> o.status
                  THEN jsonb_build_array(jsonb_build_object(
                    'at', greatest($2::bigint, o.created_at),
                    'type', 'status', 'status', c.to))
                  ELSE '[]' END,
             claimed_by = CASE WHEN c.finishes THEN NULL ELSE o.claimed_by END,
             last_change = c.token
           FROM jsonb_to_recordset($5::jsonb) AS c(
             i integer, id text, "to" text, increment boolean,
             attempts integer, set_reason boolean, reason text,
             cancel boolean, append jsonb, finishes boolean, "from" text[],
             if_cancel boolean, claimed boolean, epoch bigint, token text)
           WHERE o.id = c.id AND o.id = ANY($6::text[])
             AND o.status = ANY(c."from")
             AND (c.if_cancel IS NULL OR o.cancel_requested = c.if_cancel)
             AND (NOT c.claimed
               OR (o.claimed_by = $4 AND o.claim_epoch = c.epoch))
             AND (c.token IS NULL OR o.last_change IS DISTINCT FROM c.token)
           RETURNING c.i, o.id, o.customer_id, o.restaurant_id, o.items,
             o.status, o.created_at, o.updated_at, o.attempts,
             o.failure_reason, o.cancel_requested, o.timeline
         )
         -- changed first: a UNION takes its column names from its first part.
         SELECT * FROM changed UNION ALL SELECT * FROM created`;
}

/** One order by a unique column (`id` or `idempotency_key`). */
export function selectOneStatement(
  table: string,
  column: "id" | "idempotency_key",
): string {
  return `SELECT ${ORDER_COLUMNS} FROM ${table} WHERE ${column} = $1`;
}

/**
 * A page of orders with the filters `options` gives, oldest first, one
 * row more than the page (to tell whether another follows): the statement
 * and its values.
 */
export function listStatement(
  table: string,
  options: ListOptions,
): { text: string; values: Array<string | number> } {
  const { conditions, values } = listConditions(options);
  let parameter = 0;
  const where = conditions.length === 0
    ? ""
    : ` WHERE ${
      conditions.map((condition) =>
        condition.replace("?", () => `$${++parameter}`)
      ).join(" AND ")
    }`;
  return {
    text: `SELECT ${ORDER_COLUMNS} FROM ${table}${where} ORDER BY id LIMIT $${
      parameter + 1
    }`,
    values: [...values, options.limit + 1],
  };
}

/** An order with its claim and last change token: why a change did not apply. */
export function orderWithClaimStatement(table: string): string {
  return `SELECT ${ORDER_COLUMNS}, claimed_by, claim_epoch::text, last_change
    FROM ${table} WHERE id = $1`;
}

/**
 * Claims up to `$2` unclaimed pending orders for instance `$1`, oldest
 * first. SKIP LOCKED: instances claiming at once take different orders
 * instead of queuing behind each other's row locks.
 */
export function claimPendingStatement(table: string): string {
  return `UPDATE ${table}
    SET claimed_by = $1, claim_epoch = claim_epoch + 1
    WHERE id IN (
      SELECT id FROM ${table}
      WHERE status = 'pending' AND claimed_by IS NULL
      ORDER BY id LIMIT $2
      FOR UPDATE SKIP LOCKED)
    RETURNING id, claim_epoch::text AS epoch`;
}

/** Hands back instance `$2`'s claims on the still-pending orders of ids `$1`. */
export function releaseStatement(table: string): string {
  return `UPDATE ${table}
    SET claimed_by = NULL, claim_epoch = claim_epoch + 1
    WHERE id = ANY($1) AND claimed_by = $2 AND status = 'pending'
    RETURNING id, (claim_epoch - 1)::text AS epoch`;
}

/** Wakes every instance's claimer (NOTIFY on channel `$1`). */
export const NOTIFY_STATEMENT = "SELECT pg_notify($1, '')";

/** Renews instance `$1`'s heartbeat, with its status `$2` when given. */
export function heartbeatStatement(schema: string): string {
  return `UPDATE "${schema}".instances SET heartbeat_at = now(),
      status = coalesce($2::jsonb, status)
    WHERE id = $1`;
}

/**
 * A CTE that registers instance `$1` with lease `$2`: at start it begins
 * afresh; after it was presumed dead it only comes back.
 */
export function registerCte(schema: string, starting: boolean): string {
  const renew = starting
    ? "heartbeat_at = now(), started_at = now(), lease_ms = excluded.lease_ms"
    : "heartbeat_at = now()";
  return `registered AS (
    INSERT INTO "${schema}".instances (id, lease_ms)
    VALUES ($1, $2::integer)
    ON CONFLICT (id) DO UPDATE SET ${renew})`;
}

/** A CTE that deregisters instance `$1`. */
export function deregisterCte(schema: string): string {
  return `gone AS (DELETE FROM "${schema}".instances WHERE id = $1)`;
}

/**
 * Makes the unfinished orders matching `where` (whose parameters come
 * first) unclaimed, with a new epoch: a processing one gets an
 * `interrupted` entry and becomes pending again. The time is parameter
 * `paramCount + 1` and the work channel `paramCount + 2`; the NOTIFY is
 * part of the statement, so it goes out with the commit and only if some
 * order was freed. `before` is a further data-modifying CTE run in the
 * same statement. Returns each freed order's id and the epoch it had.
 */
export function freeStatement(
  table: string,
  where: string,
  paramCount: number,
  before?: string,
): string {
  const at = paramCount + 1;
  const channel = paramCount + 2;
  return `WITH ${before ? `${before},` : ""} freed AS (
      UPDATE ${table} SET
        claimed_by = NULL,
        claim_epoch = claim_epoch + 1,
        status = 'pending',
        updated_at = CASE WHEN status = 'processing'
          THEN greatest($${at}::bigint, created_at) ELSE updated_at END,
        timeline = CASE WHEN status = 'processing'
          THEN timeline || jsonb_build_array(
            jsonb_build_object('at', greatest($${at}::bigint, created_at),
              'type', 'interrupted', 'attempt', attempts),
            jsonb_build_object('at', greatest($${at}::bigint, created_at),
              'type', 'status', 'status', 'pending'))
          ELSE timeline END
      WHERE status IN ('pending', 'processing') AND (${where})
      RETURNING id, (claim_epoch - 1)::text AS epoch
    ), notified AS (
      SELECT pg_notify($${channel}::text, '')
      FROM (SELECT 1 FROM freed LIMIT 1) AS any_freed
    )
    SELECT freed.id, freed.epoch FROM freed, notified`;
}

/** Deletes the instances whose lease lapsed. */
export function deleteLapsedStatement(schema: string): string {
  return `DELETE FROM "${schema}".instances
    WHERE heartbeat_at < now() - lease_ms * interval '1 millisecond'`;
}

/**
 * The instances that hold orders but are not registered, found by hopping
 * along the claimed_by index from one holder to the next (a few lookups
 * per instance): testing every claimed order against the live ones read
 * the whole backlog every round, growing with the queue.
 */
export function unregisteredHoldersStatement(
  table: string,
  schema: string,
): string {
  return `WITH RECURSIVE holder AS (
      (SELECT claimed_by AS id FROM ${table}
       WHERE claimed_by IS NOT NULL ORDER BY claimed_by LIMIT 1)
      UNION ALL
      SELECT (SELECT claimed_by FROM ${table}
              WHERE claimed_by > holder.id
              ORDER BY claimed_by LIMIT 1)
      FROM holder WHERE holder.id IS NOT NULL)
    SELECT id FROM holder
    WHERE id IS NOT NULL AND id NOT IN (SELECT id FROM "${schema}".instances)`;
}

/**
 * The `where` of a rescue, for {@linkcode freeStatement}: orders held by
 * the instances `$1` if they are still unregistered in the UPDATE's own
 * snapshot (one that registered again since keeps what it holds), and
 * processing orders no one holds (left so by an older release).
 */
export function rescuedWhere(schema: string): string {
  return `(claimed_by = ANY($1)
      AND claimed_by NOT IN (SELECT id FROM "${schema}".instances))
    OR (status = 'processing' AND claimed_by IS NULL)`;
}

/** Deletes all but the newest `$1` events. */
export function trimEventsStatement(schema: string): string {
  return `DELETE FROM "${schema}".events
    WHERE seq <= (SELECT max(seq) FROM "${schema}".events) - $1`;
}

/** The instances whose lease has not lapsed, with times in epoch milliseconds. */
export function liveInstancesStatement(schema: string): string {
  return `SELECT id,
      (extract(epoch FROM started_at) * 1000)::bigint::text AS started,
      (extract(epoch FROM heartbeat_at) * 1000)::bigint::text AS beat,
      status
    FROM "${schema}".instances
    WHERE heartbeat_at >= now() - lease_ms * interval '1 millisecond'
    ORDER BY id`;
}

/** How many orders have each status. */
export function countByStatusStatement(table: string): string {
  return `SELECT status, count(*)::text AS n FROM ${table} GROUP BY status`;
}

/** A control record's value (`$1` its name). */
export function controlReadStatement(schema: string): string {
  return `SELECT value FROM "${schema}".control WHERE name = $1`;
}

/** Sets a control record (`$1` name, `$2` value). */
export function controlWriteStatement(schema: string): string {
  return `INSERT INTO "${schema}".control (name, value) VALUES ($1, $2)
    ON CONFLICT (name) DO UPDATE SET value = excluded.value`;
}

/**
 * Sets a control record unless it is set; returns a row only when it set
 * it. A racing insert of the same name waits for the other's commit on
 * the unique index, then does nothing.
 */
export function controlInsertStatement(schema: string): string {
  return `INSERT INTO "${schema}".control (name, value) VALUES ($1, $2)
    ON CONFLICT (name) DO NOTHING RETURNING name`;
}
