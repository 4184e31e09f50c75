/**
 * Reading and validating a JSON request body at the boundary: a size limit
 * enforced while reading, strict UTF-8, JSON syntax, then a zod schema.
 *
 * @module
 */

import type { MiddlewareHandler } from "hono";
import type { z } from "zod";
import { Deadlines } from "../async/deadlines.ts";
import { findDuplicateKey } from "./duplicate_keys.ts";
import { type FieldError, HttpProblem, problemType } from "./problem.ts";

/** The largest request body accepted by default: 64 KiB. */
export const DEFAULT_MAX_BODY_BYTES = 64 * 1024;

/** How long a client may take to send its body, by default: 10 s. */
export const DEFAULT_BODY_TIMEOUT_MS = 10_000;

/** Limits on reading a body. */
export interface BodyLimits {
  /** The most bytes accepted. */
  maxBytes: number;
  /** The longest a client may take to send the whole body. */
  timeoutMs: number;
}

const JSON_MEDIA_TYPE = /^application\/(?:[\w.+-]+\+)?json$/i;

/**
 * Reads a request body as text, refusing more than `maxBytes`. A declared
 * `Content-Length` over the limit is refused before reading; a chunked body
 * is read only up to the limit and then cancelled. Bytes that are not
 * UTF-8 are refused, not repaired. A body that takes longer than
 * `timeoutMs` to arrive (a client trickling bytes to hold a connection) is
 * refused with 408. `deadlines` holds the deadline while the body is read.
 *
 * @throws {HttpProblem} 413 when too large, 400 when not UTF-8, 408 when too slow.
 */
export async function readBodyText(
  request: Request,
  limits: BodyLimits,
  deadlines: Deadlines,
): Promise<string> {
  const { maxBytes, timeoutMs } = limits;
  // One promise settled by whichever comes first, the body or the
  // deadline (cheaper per request than an AbortController and a race).
  const { promise, resolve, reject } = Promise.withResolvers<string>();
  let stopReading: (() => void) | undefined;
  const cancel = deadlines.add(timeoutMs, () => {
    stopReading?.();
    reject(tooSlow(timeoutMs, request.headers.has("content-length")));
  });
  readText(request, maxBytes, (stop) => stopReading = stop)
    .then(resolve, (error) => reject(cutShort(error)));
  try {
    return await promise;
  } finally {
    cancel();
  }
}

async function readText(
  request: Request,
  maxBytes: number,
  onExpire: (stop: () => void) => void,
): Promise<string> {
  const declared = request.headers.get("content-length");
  if (declared !== null && Number(declared) > maxBytes) {
    throw tooLarge(maxBytes);
  }
  let bytes: Uint8Array;
  if (declared !== null) {
    // The server stops a body at its declared length, so the whole-body
    // read is bounded too. Do not touch `request.body` on this path:
    // creating the stream makes Deno give up its whole-body fast path.
    bytes = await request.bytes();
    if (bytes.byteLength > maxBytes) throw tooLarge(maxBytes);
  } else if (request.body) {
    bytes = await readLimited(request.body, maxBytes, onExpire);
  } else return "";
  return decodeUtf8(bytes);
}

/** Reads a stream of unknown length, cancelling it past `maxBytes`. */
async function readLimited(
  body: ReadableStream<Uint8Array>,
  maxBytes: number,
  onExpire: (stop: () => void) => void,
): Promise<Uint8Array> {
  const reader = body.getReader();
  // Past the deadline, stop waiting for a trickling client.
  onExpire(() => void reader.cancel().catch(() => {}));
  const chunks: Uint8Array[] = [];
  let total = 0;
  while (true) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > maxBytes) {
      await reader.cancel().catch(() => {});
      throw tooLarge(maxBytes);
    }
    chunks.push(value);
  }
  if (chunks.length === 1) return chunks[0] as Uint8Array;
  const bytes = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return bytes;
}

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });

function decodeUtf8(bytes: Uint8Array): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw new HttpProblem(
      400,
      "Bad Request",
      "Request body is not valid UTF-8",
      {
        type: problemType("invalid-encoding"),
      },
    );
  }
}

/**
 * A failed read of the body as the client's doing: the connection ended or
 * was reset before the body was whole (Deno reports `BadResource` or a
 * stream error). Our own refusals pass through as they are.
 */
function cutShort(error: unknown): unknown {
  if (error instanceof HttpProblem) return error;
  return new HttpProblem(
    400,
    "Bad Request",
    "Request body ended before it was complete (the connection closed or reset)",
    { type: problemType("incomplete-body") },
  );
}

/**
 * The 408. The connection cannot be reused (the rest of the body may still
 * come), so it says `connection: close`; where the body's length was
 * declared, Deno adds that header itself for a body left unread, and a
 * second copy would repeat it.
 */
function tooSlow(timeoutMs: number, lengthDeclared: boolean): HttpProblem {
  return new HttpProblem(
    408,
    "Request Timeout",
    `Request body did not arrive within ${timeoutMs} ms`,
    {
      type: problemType("body-timeout"),
      ...(lengthDeclared ? {} : { headers: { connection: "close" } }),
    },
  );
}

function tooLarge(maxBytes: number): HttpProblem {
  return new HttpProblem(
    413,
    "Content Too Large",
    `Request body exceeds the limit of ${maxBytes} bytes`,
    { type: problemType("body-too-large") },
  );
}

/**
 * Turns zod issues into the `errors` list of a problem. `unknownKey` words
 * the message for a member the schema does not know (by default: an order
 * field a client may not send).
 */
export function fieldErrors(
  issues: readonly z.core.$ZodIssue[],
  unknownKey: (key: string) => string = (key) =>
    `${key} is not accepted: an order is sent as customer_id, restaurant_id and items only`,
): FieldError[] {
  const errors: FieldError[] = [];
  for (const issue of issues) {
    const path = issue.path.map(String);
    if (issue.code === "unrecognized_keys") {
      // Name each unknown field instead of blaming the enclosing object.
      for (const key of issue.keys) {
        errors.push(fieldError([...path, key], unknownKey(key)));
      }
    } else errors.push(fieldError(path, issue.message));
  }
  return errors;
}

/** One invalid field, at `path` (its pointer escaped per RFC 6901). */
export function fieldError(path: string[], message: string): FieldError {
  return {
    field: path.join("."),
    pointer: path.map((part) =>
      "/" + part.replaceAll("~", "~0").replaceAll("/", "~1")
    ).join(""),
    message,
  };
}

/**
 * Middleware that parses and validates a JSON body; handlers read the result
 * with `c.req.valid("json")`. Hono's own `validator("json")` cannot be used:
 * it decodes invalid UTF-8 by replacing bytes, and has no size limit.
 */
export function jsonBody<Schema extends z.ZodType>(
  schema: Schema,
  options: Partial<BodyLimits> = {},
  /** What the body describes, for messages ("an order", "a webhook endpoint"), and the fields it takes. */
  what: { noun: string; fields: string } = {
    noun: "an order",
    fields: "customer_id, restaurant_id and items",
  },
): MiddlewareHandler<
  // deno-lint-ignore no-explicit-any
  any,
  string,
  { in: { json: z.input<Schema> }; out: { json: z.output<Schema> } }
> {
  const limits: BodyLimits = {
    maxBytes: options.maxBytes ?? DEFAULT_MAX_BODY_BYTES,
    timeoutMs: options.timeoutMs ?? DEFAULT_BODY_TIMEOUT_MS,
  };
  // One timer for every body this route is reading; it runs only while
  // one is.
  const deadlines = new Deadlines(50);
  return async (c, next) => {
    const contentType = c.req.header("content-type") ?? "";
    const mediaType = contentType.split(";")[0]?.trim() ?? "";
    if (!JSON_MEDIA_TYPE.test(mediaType)) {
      throw new HttpProblem(
        415,
        "Unsupported Media Type",
        `Request body must be declared as application/json, received "${contentType}"`,
        { type: problemType("unsupported-media-type") },
      );
    }
    const text = await readBodyText(c.req.raw, limits, deadlines);
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (error) {
      throw new HttpProblem(
        400,
        "Bad Request",
        `Request body is not valid JSON: ${(error as Error).message}`,
        { type: problemType("malformed-json") },
      );
    }
    const duplicate = findDuplicateKey(text);
    if (duplicate !== undefined) {
      throw new HttpProblem(
        400,
        "Bad Request",
        `Request body names "${duplicate.slice(0, 64)}" twice in one object`,
        { type: problemType("duplicate-key") },
      );
    }
    const result = schema.safeParse(parsed);
    if (!result.success) {
      throw new HttpProblem(
        422,
        "Unprocessable Content",
        `Request body does not describe a valid ${
          what.noun.replace(/^an? /, "")
        }`,
        {
          type: problemType("validation-failed"),
          errors: fieldErrors(
            result.error.issues,
            (key) =>
              `${key} is not accepted: ${what.noun} is sent as ${what.fields} only`,
          ),
        },
      );
    }
    c.req.addValidatedData("json", result.data as object);
    await next();
  };
}
