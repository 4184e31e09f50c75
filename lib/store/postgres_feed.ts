/**
 * Every instance's order changes, read from the PostgreSQL event table.
 *
 * @module
 */

// @ts-types="npm:@types/pg@8.23.1"
import type pg from "pg";
import type { Order } from "../orders/order.ts";
import type { ChangeFeed, StoredChange } from "../orders/order_store.ts";
import type { PostgresListener } from "./postgres_listener.ts";

/** Rows read at most per query. */
const PAGE = 200;
/** The backstop poll: a NOTIFY lost with its connection delays events at most this long. */
const POLL_MS = 1000;
/** While a notified event is not yet readable, look again this often. */
const RETRY_MS = 5;
/** A notified event not read within this long is left to the poll. */
const GIVE_UP_MS = 5000;
/** This instance's NOTIFY waits this long, to tell of many events at once. */
const NOTIFY_EVERY_MS = 2;

interface EventRow {
  seq: string;
  xid: string;
  name: string;
  order: Order;
  instance: string;
}

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
 * Waking: the instance that wrote events reads them within a couple of
 * milliseconds (the store calls {@linkcode wrote} after each commit) and
 * then sends one NOTIFY,
 * carrying the newest sequence number, for all it read within a couple of
 * milliseconds; the others read on that NOTIFY, or on the poll.
 */
export class PostgresFeed implements ChangeFeed {
  readonly #listener: PostgresListener;
  readonly #replayQuery: <R extends pg.QueryResultRow>(
    text: string,
    values: unknown[],
  ) => Promise<pg.QueryResult<R>>;
  readonly #table: string;
  readonly #instanceId: string;
  readonly #channel: string;
  #ownSeq = 0;
  #notifyTimer: ReturnType<typeof setTimeout> | undefined;
  #soon: ReturnType<typeof setTimeout> | undefined;
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
    replayQuery: <R extends pg.QueryResultRow>(
      text: string,
      values: unknown[],
    ) => Promise<pg.QueryResult<R>>,
  ) {
    this.#replayQuery = replayQuery;
    this.#listener = listener;
    this.#table = `"${schema}".events`;
    this.#instanceId = instanceId;
    this.#channel = channel;
  }

  async start(
    publish: (change: StoredChange) => void,
    history: number,
  ): Promise<void> {
    // The last `history` events, for Last-Event-ID replay on this instance
    // too; the cursor then stands after them.
    const result = await this.#listener.query<EventRow>(
      `SELECT seq::text, xid::text, name, "order", instance FROM (
         SELECT * FROM ${this.#table}
         WHERE xid < pg_snapshot_xmin(pg_current_snapshot())
         ORDER BY xid DESC, seq DESC LIMIT $1) AS recent
       ORDER BY recent.xid, recent.seq`,
      [history],
    );
    this.#publish = publish;
    this.#deliver(result.rows);
    this.#poll = setInterval(() => this.read(), POLL_MS);
    this.read();
  }

  async replayAfter(
    id: number,
    limit: number,
  ): Promise<StoredChange[] | undefined> {
    if (!Number.isSafeInteger(id) || id < 1) return undefined;
    // Up to the cursor: what comes after it reaches the hub as it is read.
    const cursor = this.#cursor;
    const result = await this.#replayQuery<EventRow>(
      `SELECT e.seq::text, e.xid::text, e.name, e."order", e.instance
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
    return result.rows.map((row) => ({
      id: Number(row.seq),
      name: row.name,
      order: row.order,
      instance: row.instance,
    }));
  }

  /** A NOTIFY for event `seq`: read what is new. */
  notified(seq: number): void {
    if (!this.#publish) return;
    if (Number.isSafeInteger(seq)) this.#awaited.set(seq, Date.now());
    this.read();
  }

  /**
   * This instance committed events: read them within a couple of
   * milliseconds, so that the commits of that time share one read (under
   * load, reading after every commit cost a query per commit).
   */
  wrote(): void {
    if (!this.#publish || this.#closed) return;
    this.#soon ??= setTimeout(() => {
      this.#soon = undefined;
      this.read();
    }, NOTIFY_EVERY_MS);
  }

  /** Reads every event not read yet (one read at a time). */
  read(): void {
    if (!this.#publish || this.#closed) return;
    if (this.#reading) {
      this.#again = true;
      return;
    }
    this.#reading = true;
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
        `SELECT seq::text, xid::text, name, "order", instance
         FROM ${this.#table} AS events
         WHERE (xid, seq) > ($1::xid8, $2::bigint)
           AND xid < pg_snapshot_xmin(pg_current_snapshot())
         ORDER BY events.xid, events.seq LIMIT ${PAGE}`,
        [this.#cursor.xid, this.#cursor.seq],
      );
      this.#deliver(result.rows);
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
    this.#listener.query("SELECT pg_notify($1, $2)", [
      this.#channel,
      String(this.#ownSeq),
    ]).catch(() => {
      // Lost with the connection: the others' poll reads the events.
    });
  }

  #deliver(rows: EventRow[]): void {
    for (const row of rows) {
      this.#cursor = { xid: row.xid, seq: row.seq };
      const id = Number(row.seq);
      this.#awaited.delete(id);
      if (row.instance === this.#instanceId && id > this.#ownSeq) {
        this.#ownSeq = id;
        this.#notifyTimer ??= setTimeout(() => this.#notify(), NOTIFY_EVERY_MS);
      }
      this.#publish!({
        id,
        name: row.name,
        order: row.order,
        instance: row.instance,
      });
    }
  }
}
