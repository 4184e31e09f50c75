/** The test database, and one-off statements against it (schemas, probes). */

// @ts-types="npm:@types/pg@8.23.1"
import pg from "pg";

/** The database the PostgreSQL tests use. */
export const TEST_DATABASE_URL = Deno.env.get("TEST_DATABASE_URL") ??
  "postgres://root@127.0.0.1:5432/test";

/** Runs one statement on a connection of its own. */
export async function adminQuery<Row extends pg.QueryResultRow>(
  text: string,
  params: unknown[] = [],
): Promise<Row[]> {
  const client = new pg.Client({
    connectionString: TEST_DATABASE_URL,
    connectionTimeoutMillis: 3000,
  });
  client.on("error", () => {});
  await client.connect();
  try {
    return (await client.query<Row>(text, params)).rows;
  } finally {
    await client.end().catch(() => {});
  }
}

/** Whether the test database answers. */
export async function isReachable(): Promise<boolean> {
  try {
    await adminQuery("SELECT 1");
    return true;
  } catch {
    return false;
  }
}

/**
 * Whether the tests can reach PostgreSQL; in CI it must be reachable, so
 * a test file that needs it fails there rather than skipping.
 */
export async function postgresForTests(): Promise<boolean> {
  const reachable = await isReachable();
  if (!reachable && Deno.env.get("CI") === "true") {
    throw new Error("PostgreSQL must be reachable in CI");
  }
  return reachable;
}

/** A fresh schema name, and a function that drops it. */
export function freshSchema(prefix = "test") {
  const schema = `${prefix}_${
    crypto.randomUUID().replaceAll("-", "").slice(0, 16)
  }`;
  return {
    schema,
    drop: () => adminQuery(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`),
  };
}
