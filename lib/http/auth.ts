/**
 * Optional API keys: `Authorization: Bearer <key>` on every endpoint but the
 * health checks.
 *
 * @module
 */

import type { Context, MiddlewareHandler } from "hono";
import { bearerAuth } from "hono/bearer-auth";
import { problem, problemType } from "./problem.ts";

/** Paths that answer without a key, so probes need no secret. */
export const UNAUTHENTICATED_PATHS: ReadonlySet<string> = new Set([
  "/health",
  "/ready",
]);

/**
 * Whether `path` is open without a key: the probes, and the API
 * description (a browser cannot send a bearer token to load a page, and the
 * description holds no secret).
 */
export function isOpenPath(path: string): boolean {
  return UNAUTHENTICATED_PATHS.has(path) || path === "/openapi.json" ||
    path === "/docs" || path.startsWith("/docs/assets/") ||
    // The page and its code hold no data; it asks for a key, and its API
    // (/dashboard/api/…) needs one.
    path === "/dashboard" || path.startsWith("/dashboard/assets/");
}

function unauthorized(detail: string) {
  return (c: Context) =>
    problem(c, {
      type: problemType("unauthorized"),
      title: "Unauthorized",
      status: 401,
      detail,
    }, { "www-authenticate": 'Bearer realm="order-service"' });
}

/**
 * Requires one of `keys` as a bearer token. Built on Hono's `bearerAuth`,
 * which compares SHA-256 digests of the keys in constant time; a missing,
 * malformed or wrong key answers 401 with `WWW-Authenticate: Bearer` and a
 * problem+json body. Keys are never logged.
 */
export function apiKeyAuth(keys: readonly string[]): MiddlewareHandler {
  if (keys.length === 0) {
    throw new RangeError("Cannot require API keys: no key was given");
  }
  const auth = bearerAuth({
    token: [...keys],
    realm: "order-service",
    noAuthenticationHeader: {
      message: unauthorized(
        "This endpoint requires Authorization: Bearer <API key>",
      ),
    },
    invalidAuthenticationHeader: {
      message: unauthorized(
        "The Authorization header must be: Bearer <API key>",
      ),
    },
    invalidToken: { message: unauthorized("The API key is not valid") },
  });
  return (c, next) => isOpenPath(c.req.path) ? next() : auth(c, next);
}

/** Reads API keys from a file: one per line; blank lines and `#` comments are skipped. */
export function parseApiKeysFile(text: string): string[] {
  return text.split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== "" && !line.startsWith("#"));
}
