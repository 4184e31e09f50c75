/**
 * What every part of the PostgreSQL store shares: telling a lost database
 * from a bug, transactions on a pooled connection, pools whose dropped
 * connections cannot end the process, deadlocks tried again, and the names
 * it accepts and logs.
 *
 * @module
 */

// @ts-types="npm:@types/pg@8.23.1"
import pg from "pg";
import { StoreUnavailableError } from "../orders/errors.ts";

/** The URL as it may be logged: the password replaced. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = "***";
    return parsed.toString();
  } catch {
    return "(an invalid URL)";
  }
}

/** Whether `spec` is a `postgres://` or `postgresql://` URL this store can open. */
export function isPostgresUrl(spec: string): boolean {
  if (!/^postgres(ql)?:\/\/./.test(spec)) return false;
  try {
    new URL(spec);
    return true;
  } catch {
    return false;
  }
}

/**
 * Whether `name` is a schema name this store accepts: 1–56 of a-z, 0-9 and
 * _, not starting with a digit (56, so that the NOTIFY channels named after
 * it, `<schema>_events` and `<schema>_work`, fit PostgreSQL's 63 bytes).
 */
export function isSchemaName(name: string): boolean {
  return /^[a-z_][a-z0-9_]{0,55}$/.test(name);
}

/** Whether `id` is an instance id this store accepts: 1–64 of A-Z, a-z, 0-9, `.`, `_`, `-`. */
export function isInstanceId(id: string): boolean {
  return /^[A-Za-z0-9._-]{1,64}$/.test(id);
}

/**
 * Whether an error means the database could not be reached or used (a
 * refused or lost connection, a server shutting down), as opposed to a bug
 * in a query: those become `StoreUnavailableError` (503, and a worker
 * retries), the rest stay what they are.
 */
export function isUnavailable(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === "string") {
    return /^(08|53|57P|58)/.test(code) || // SQLSTATE connection, resources, shutdown
      /^(ECONN|EPIPE|ETIMEDOUT|EHOSTUNREACH|ENOTFOUND|EAI_AGAIN)/.test(code);
  }
  // node-postgres reports a dropped or unobtainable connection by message
  // only ("Connection terminated unexpectedly", "Client has encountered a
  // connection error and is not queryable", "timeout exceeded when trying
  // to connect").
  return /connection terminated|connection error|not queryable|timeout exceeded when trying to connect|connection ended|query read timeout/i
    .test(String((error as Error | null)?.message));
}

/**
 * Runs `body` in a transaction on one pooled connection: COMMIT when it
 * returns, ROLLBACK when it throws. A connection that failed is destroyed
 * rather than returned to the pool.
 */
export async function inTransaction<T>(
  pool: pg.Pool,
  body: (client: pg.PoolClient) => Promise<T>,
): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  // A checked-out client reports a dropped connection as an "error" event;
  // with no listener that event ends the process (the pool listens only
  // while a client is idle). The failed query rejects as well.
  const onError = (error: Error) => broken = error;
  client.on("error", onError);
  try {
    await client.query("BEGIN");
    const result = await body(client);
    await client.query("COMMIT");
    return result;
  } catch (error) {
    if (isUnavailable(error)) broken = error as Error;
    else await client.query("ROLLBACK").catch(() => {});
    throw error;
  } finally {
    client.off("error", onError);
    client.release(broken);
  }
}

/** Runs `query`, turning a lost or refused database into `StoreUnavailableError`. */
export async function orUnavailable<T>(query: () => Promise<T>): Promise<T> {
  try {
    return await query();
  } catch (error) {
    if (isUnavailable(error)) {
      throw new StoreUnavailableError((error as Error).message);
    }
    throw error;
  }
}

/**
 * Runs `query`; a deadlock (SQLSTATE 40P01), which rolled the statement
 * back whole, runs it again, up to 5 times. A lost database becomes
 * `StoreUnavailableError`.
 */
export async function retryDeadlock<T>(query: () => Promise<T>): Promise<T> {
  for (let attempt = 1;; attempt++) {
    try {
      return await orUnavailable(query);
    } catch (error) {
      if ((error as { code?: string }).code !== "40P01" || attempt === 5) {
        throw error;
      }
    }
  }
}

/**
 * A pool whose connections' "error" events are heard. A connection the
 * server drops is reported as an "error" event — on the pool while the
 * client is idle, on the client while a query runs (also inside
 * pool.query) — and an event nobody listens to ends the process (seen with
 * pg_terminate_backend under load). The query that was running rejects as
 * well, and that is where we handle it.
 */
export function quietPool(config: pg.PoolConfig): pg.Pool {
  const pool = new pg.Pool(config);
  pool.on("error", () => {});
  pool.on("connect", (client) => client.on("error", () => {}));
  return pool;
}
