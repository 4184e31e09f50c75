/**
 * Every instance's order changes, read from the PostgreSQL event table.
 *
 * @module
 */

// @ts-types="npm:@types/pg@8.23.1"
import type pg from "pg";
import type { Order } from "../orders/order.ts";
import { zeroStatusCounts } from "../orders/order.ts";
import type {
  ChangeFeed,
  FeedStart,
  StoredChange,
} from "../orders/order_store.ts";
import type { PostgresListener } from "./postgres_listener.ts";

/** Rows read at most per query. */
const PAGE = 200;
/** The backstop poll: a NOTIFY lost with its connection delays events at most this long. */
const POLL_MS = 1000;
/** While a notified event is not yet readable, look again this often. */
const RETRY_MS = 5;
/** A notified event not read within this long is left to the poll. */
const GIVE_UP_MS = 5000;
/**
 * Reads after this instance's commits, and its NOTIFYs, go out at once
 * when the last was longer ago than this, and otherwise wait for it: when
 * quiet an event is read as soon as it commits; under load one read (and
 * one NOTIFY) carries what this long gathered. Each read and NOTIFY is a
 * round trip that both this process and the database pay for: at 2 ms,
 * POST /orders ran at 6,095/6,462/6,585 req/s, at 25 ms 7,567/7,553/6,814
 * (alternated, one instance).
 */
const READ_EVERY_MS = 20;

/** Own orders remembered at most, for their events (see `remember`). */
const KNOWN_LIMIT = 5000;

/** An event row; `order` is set only on rows written before schema 3. */
interface EventRow {
  seq: string;
  xid: string;
  order_id: string;
  name: string;
  instance: string;
  order: Order | null;
  status: Order["status"];
  updated_at: string;
  attempts: number;
  failure_reason: string | null;
  cancel_requested: boolean;
  entries: number;
}

/** The columns of an event row, as {@linkcode EventRow} has them. */
function eventColumns(alias: string): string {
  return [
    "seq::text",
    "xid::text",
    "order_id",
    "name",
    "instance",
    '"order"',
    "status",
    "updated_at::text",
    "attempts",
    "failure_reason",
    "cancel_requested",
    "entries",
  ].map((column) => `${alias}.${column}`)
    .join(", ");
}

/** What never changes in an order, and its timeline so far. */
type OrderBase = Pick<
  Order,
  "id" | "customer_id" | "restaurant_id" | "items" | "created_at" | "timeline"
>;

type Query = <R extends pg.QueryResultRow>(
  text: string,
  values: unknown[],
) => Promise<pg.QueryResult<R>>;

/**
 * Reads events in `(xid, seq)` order, and only below the oldest running
 * transaction (`pg_snapshot_xmin`). Race: sequence numbers are drawn
 * before commit and transactions commit out of order, so "every seq above
 * the last one read" would pass over an event whose transaction commits a
 * moment after a later one's. Every transaction that can still commit has
 * an xid at or above that horizon, so nothing can appear behind the
 * cursor. Every instance reads the same rows in the same order, so the
 * events and their ids are alike everywhere.
 *
 * Waking: the instance that wrote events reads them at once, or under
 * load within {@linkcode READ_EVERY_MS} (the store calls
 * {@linkcode wrote} after each commit), and then sends one NOTIFY,
 * carrying the newest sequence number, for all it read meanwhile; the
 * others read on that NOTIFY, or on the poll.
 */
export class PostgresFeed implements ChangeFeed {
  readonly #listener: PostgresListener;
  readonly #replayQuery: Query;
  readonly #listenerQuery: Query;
  readonly #table: string;
  readonly #orders: string;
  // This instance's latest writes, by order id, until their events are read.
  readonly #known = new Map<string, OrderBase>();
  readonly #instanceId: string;
  readonly #channel: string;
  #ownSeq = 0;
  #notifyTimer: ReturnType<typeof setTimeout> | undefined;
  #soon: ReturnType<typeof setTimeout> | undefined;
  #lastRead = 0;
  #lastNotify = 0;
  #publish: ((change: StoredChange) => void) | undefined;
  #cursor = { xid: "0", seq: "0" };
  #reading = false;
  #again = false;
  // Notified sequence numbers not read yet, with when they were notified.
  readonly #awaited = new Map<number, number>();
  #retry: ReturnType<typeof setTimeout> | undefined;
  #poll: ReturnType<typeof setInterval> | undefined;
  #closed = false;

  /**
   * A feed of `schema`'s event table, read through `listener`; it tells
   * the others of `instanceId`'s events on NOTIFY `channel`. Replays (which
   * may be long) run through `replayQuery`, the pool, so that they never
   * hold up the listener's heartbeats.
   */
  constructor(
    listener: PostgresListener,
    schema: string,
    instanceId: string,
    channel: string,
    replayQuery: Query,
  ) {
    this.#replayQuery = replayQuery;
    this.#listener = listener;
    this.#listenerQuery = (text, values) => listener.query(text, values);
    this.#table = `"${schema}".events`;
    this.#orders = `"${schema}".orders`;
    this.#instanceId = instanceId;
    this.#channel = channel;
  }

  async start(
    publish: (change: StoredChange) => void,
    history: number,
  ): Promise<FeedStart> {
    // One snapshot for the history, the counts and what the counts hold
    // beyond the history: read apart, an order created in between was
    // counted at start and again when its event came (a pending order
    // that never went away on the dashboard).
    const query = this.#listenerQuery;
    await query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", []);
    let rows: EventRow[];
    const counts = zeroStatusCounts();
    const counted = new Set<number>();
    try {
      // The last `history` events, for Last-Event-ID replay on this
      // instance too; the cursor then stands after them.
      rows = (await query<EventRow>(
        `SELECT ${eventColumns("recent")} FROM (
           SELECT * FROM ${this.#table}
           WHERE xid < pg_snapshot_xmin(pg_current_snapshot())
           ORDER BY xid DESC, seq DESC LIMIT $1) AS recent
         ORDER BY recent.xid, recent.seq`,
        [history],
      )).rows;
      const statuses = await query<{ status: Order["status"]; n: string }>(
        `SELECT status, count(*)::text AS n FROM ${this.#orders}
         GROUP BY status`,
        [],
      );
      for (const row of statuses.rows) counts[row.status] = Number(row.n);
      // Committed before the snapshot, yet after the cursor (a transaction
      // older than theirs was still running): read live later, and
      // already in the counts.
      const last = rows.at(-1);
      const beyond = await query<{ seq: string }>(
        `SELECT seq::text FROM ${this.#table}
         WHERE (xid, seq) > ($1::xid8, $2::bigint)
           AND pg_visible_in_snapshot(xid, pg_current_snapshot())`,
        [last?.xid ?? "0", last?.seq ?? "0"],
      );
      for (const row of beyond.rows) counted.add(Number(row.seq));
      await query("COMMIT", []);
    } catch (error) {
      await query("ROLLBACK", []).catch(() => {});
      throw error;
    }
    const changes = await this.#changes(rows, this.#listenerQuery);
    this.#publish = publish;
    this.#deliver(rows, changes);
    this.#poll = setInterval(() => this.read(), POLL_MS);
    this.read();
    return { counts, counted };
  }

  async replayAfter(
    id: number,
    limit: number,
  ): Promise<StoredChange[] | undefined> {
    if (!Number.isSafeInteger(id) || id < 1) return undefined;
    // Up to the cursor: what comes after it reaches the hub as it is read.
    const cursor = this.#cursor;
    const result = await this.#replayQuery<EventRow>(
      `SELECT ${eventColumns("e")}
       FROM ${this.#table} AS e,
         (SELECT xid, seq FROM ${this.#table} WHERE seq = $1) AS since
       WHERE (e.xid, e.seq) > (since.xid, since.seq)
         AND (e.xid, e.seq) <= ($2::xid8, $3::bigint)
       ORDER BY e.xid, e.seq LIMIT $4`,
      [id, cursor.xid, cursor.seq, limit + 1],
    );
    if (result.rows.length > limit) return undefined;
    if (result.rows.length === 0) {
      // Either nothing followed it, or it is not kept: tell them apart.
      const kept = await this.#replayQuery<{ seq: string }>(
        `SELECT seq::text FROM ${this.#table} WHERE seq = $1`,
        [id],
      );
      if (kept.rows.length === 0) return undefined;
    }
    return (await this.#changes(result.rows, this.#replayQuery)).filter(
      (change) => change !== undefined,
    );
  }

  /**
   * This instance wrote `order` (its answer is in): its events, read soon,
   * take the order from here instead of from the table. Forgotten once
   * they are read, or, if they never are, after {@linkcode KNOWN_LIMIT}
   * newer ones.
   */
  remember(order: Order): void {
    if (!this.#publish || this.#closed) return;
    this.#known.delete(order.id);
    this.#known.set(order.id, order);
    if (this.#known.size > KNOWN_LIMIT) {
      this.#known.delete(this.#known.keys().next().value!);
    }
  }

  /** A NOTIFY for event `seq`: read what is new. */
  notified(seq: number): void {
    if (!this.#publish) return;
    if (Number.isSafeInteger(seq)) this.#awaited.set(seq, Date.now());
    this.read();
  }

  /**
   * This instance committed events: read them now, or, if the last read
   * began less than {@linkcode READ_EVERY_MS} ago, when that much has
   * passed, so that the commits of that time share one read.
   */
  wrote(): void {
    if (!this.#publish || this.#closed || this.#soon) return;
    const wait = this.#lastRead + READ_EVERY_MS - Date.now();
    if (wait <= 0) return this.read();
    this.#soon = setTimeout(() => {
      this.#soon = undefined;
      this.read();
    }, wait);
  }

  /** Reads every event not read yet (one read at a time). */
  read(): void {
    if (!this.#publish || this.#closed) return;
    if (this.#reading) {
      this.#again = true;
      return;
    }
    this.#reading = true;
    this.#lastRead = Date.now();
    this.#readAll().catch(() => {
      // The connection is down; its return (onConnect) reads again.
    }).finally(() => {
      this.#reading = false;
      if (this.#again) {
        this.#again = false;
        this.read();
      } else if (this.#awaited.size > 0 && !this.#closed) {
        clearTimeout(this.#retry);
        this.#retry = setTimeout(() => this.read(), RETRY_MS);
      }
    });
  }

  /** Stops reading. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#retry);
    clearTimeout(this.#notifyTimer);
    clearTimeout(this.#soon);
    clearInterval(this.#poll);
  }

  async #readAll(): Promise<void> {
    while (!this.#closed) {
      // Qualified in ORDER BY: a bare "xid" or "seq" there would name the
      // text columns of the select list, and sort "10" before "9".
      const result = await this.#listener.query<EventRow>(
        `SELECT ${eventColumns("events")}
         FROM ${this.#table} AS events
         WHERE (xid, seq) > ($1::xid8, $2::bigint)
           AND xid < pg_snapshot_xmin(pg_current_snapshot())
         ORDER BY events.xid, events.seq LIMIT ${PAGE}`,
        [this.#cursor.xid, this.#cursor.seq],
      );
      const changes = await this.#changes(result.rows, this.#listenerQuery);
      if (this.#closed) return;
      this.#deliver(result.rows, changes);
      if (result.rows.length < PAGE) break;
    }
    const now = Date.now();
    for (const [seq, at] of this.#awaited) {
      if (now - at > GIVE_UP_MS) this.#awaited.delete(seq);
    }
  }

  #notify(): void {
    this.#notifyTimer = undefined;
    if (this.#closed) return;
    this.#lastNotify = Date.now();
    this.#listener.query("SELECT pg_notify($1, $2)", [
      this.#channel,
      String(this.#ownSeq),
    ]).catch(() => {
      // Lost with the connection: the others' poll reads the events.
    });
  }

  #deliver(rows: EventRow[], changes: Array<StoredChange | undefined>): void {
    for (const [index, row] of rows.entries()) {
      this.#cursor = { xid: row.xid, seq: row.seq };
      const id = Number(row.seq);
      this.#awaited.delete(id);
      if (row.instance === this.#instanceId && id > this.#ownSeq) {
        this.#ownSeq = id;
        // After this page is delivered (so that it names the newest), or
        // when the last NOTIFY is READ_EVERY_MS old.
        this.#notifyTimer ??= setTimeout(
          () => this.#notify(),
          Math.max(0, this.#lastNotify + READ_EVERY_MS - Date.now()),
        );
      }
      const change = changes[index];
      if (change) this.#publish!(change);
    }
  }

  /**
   * The changes `rows` record, each with the order as it was then: the
   * remembered write, or the order's row (one query for all the rows
   * that need one). `undefined` for an event whose order's row is gone
   * (orders are never deleted; this is a guard, not a case).
   */
  async #changes(
    rows: EventRow[],
    query: Query,
  ): Promise<Array<StoredChange | undefined>> {
    const bases = new Map<string, OrderBase>();
    const missing = new Set<string>();
    for (const row of rows) {
      if (row.order || bases.has(row.order_id)) continue;
      const known = this.#known.get(row.order_id);
      if (known && known.timeline.length >= row.entries) {
        bases.set(row.order_id, known);
      } else missing.add(row.order_id);
    }
    if (missing.size > 0) {
      const result = await query<OrderBase & { created_at: string }>(
        `SELECT id, customer_id, restaurant_id, items, created_at::text,
           timeline
         FROM ${this.#orders} WHERE id = ANY($1)`,
        [[...missing]],
      );
      for (const row of result.rows) {
        bases.set(row.id, { ...row, created_at: Number(row.created_at) });
      }
    }
    return rows.map((row) => {
      if (row.order) {
        return {
          id: Number(row.seq),
          name: row.name,
          order: row.order,
          instance: row.instance,
        };
      }
      const base = bases.get(row.order_id);
      if (!base) return undefined;
      // Read: its write needs no remembering any more.
      if (this.#known.get(row.order_id)?.timeline.length === row.entries) {
        this.#known.delete(row.order_id);
      }
      return {
        id: Number(row.seq),
        name: row.name,
        order: {
          id: base.id,
          customer_id: base.customer_id,
          restaurant_id: base.restaurant_id,
          items: base.items,
          status: row.status,
          created_at: base.created_at,
          updated_at: Number(row.updated_at),
          attempts: row.attempts,
          failure_reason: row.failure_reason,
          cancel_requested: row.cancel_requested,
          timeline: base.timeline.length === row.entries
            ? base.timeline
            : base.timeline.slice(0, row.entries),
        },
        instance: row.instance,
      };
    });
  }
}
