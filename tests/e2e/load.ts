/** A small closed-loop load generator for end-to-end tests. */

import { EXAMPLE_ORDER } from "../helpers.ts";

/** What the clients saw. */
export interface LoadResult {
  /** Ids of the orders answered 201. */
  created: string[];
  /** Answers by status code. */
  statuses: Map<number, number>;
  /** Requests that failed without an answer (closed connection …). */
  connectionErrors: number;
  /** Requests that got no answer within the per-request timeout: a hang. */
  timeouts: number;
}

/** Options for {@linkcode postOrdersUntil}. */
export interface LoadOptions {
  /** Concurrent clients, each posting one order after another. */
  concurrency: number;
  /** Stop once this resolves (or after `maxMs`). */
  stop?: Promise<unknown>;
  /** Stop once this many orders were answered 201 (or after `maxMs`). */
  createdCount?: number;
  /** Upper bound on the whole run. */
  maxMs: number;
  /** A request unanswered after this long counts as a hang. */
  requestTimeoutMs?: number;
}

/** Posts the example order from many clients until told to stop. */
export async function postOrdersUntil(
  url: string,
  options: LoadOptions,
): Promise<LoadResult> {
  const result: LoadResult = {
    created: [],
    statuses: new Map(),
    connectionErrors: 0,
    timeouts: 0,
  };
  let stopped = false;
  const overall = setTimeout(() => stopped = true, options.maxMs);
  options.stop?.then(() => stopped = true, () => stopped = true);
  const client = async () => {
    while (!stopped) {
      const controller = new AbortController();
      const timer = setTimeout(
        () => controller.abort(new Error("timeout")),
        options.requestTimeoutMs ?? 10_000,
      );
      try {
        const response = await fetch(`${url}/orders`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify(EXAMPLE_ORDER),
          signal: controller.signal,
        });
        const body = await response.json();
        result.statuses.set(
          response.status,
          (result.statuses.get(response.status) ?? 0) + 1,
        );
        if (response.status === 201) {
          result.created.push(body.id);
          if (result.created.length >= (options.createdCount ?? Infinity)) {
            stopped = true;
          }
        }
      } catch {
        if (controller.signal.aborted) result.timeouts++;
        else {
          result.connectionErrors++;
          // The server is going away; do not spin on refused connections.
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
      } finally {
        clearTimeout(timer);
      }
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, client));
  clearTimeout(overall);
  return result;
}

/** Every order the service lists, following `Link: rel="next"` headers. */
export async function listAllOrders(
  url: string,
): Promise<
  Array<
    {
      id: string;
      status: string;
      attempts: number;
      failure_reason: string | null;
      timeline: Array<{ type: string }>;
    }
  >
> {
  const orders = [];
  let next: string | undefined = "/orders?limit=1000";
  while (next) {
    const response: Response = await fetch(url + next);
    orders.push(...await response.json());
    next = /<([^>]+)>; rel="next"/.exec(response.headers.get("link") ?? "")
      ?.[1];
  }
  return orders;
}

/** Waits until no order is pending or processing. */
export async function waitUntilSettled(
  url: string,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const count = async (status: string) =>
    (await (await fetch(`${url}/orders?status=${status}&limit=1`)).json())
      .length;
  while ((await count("pending")) + (await count("processing")) > 0) {
    if (Date.now() > deadline) throw new Error("Orders did not settle in time");
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** POSTs the example order to the service at `url`. */
export function postOrder(
  url: string,
  signal?: AbortSignal,
): Promise<Response> {
  return fetch(`${url}/orders`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(EXAMPLE_ORDER),
    ...(signal ? { signal } : {}),
  });
}

/** A request on a connection of its own, so that the kernel may send it to either isolate. */
export async function onNewConnection(
  url: string,
  init: RequestInit = {},
): Promise<Response> {
  const client = Deno.createHttpClient({ poolMaxIdlePerHost: 0 });
  try {
    const response = await fetch(url, { ...init, client });
    const body = await response.arrayBuffer();
    // Read whole before the connection closes (204 and 304 have no body).
    const empty = response.status === 204 || response.status === 304;
    return new Response(empty ? null : body, response);
  } finally {
    client.close();
  }
}

/** POSTs the example order on a connection of its own. */
export function postOnNewConnection(
  url: string,
  headers: Record<string, string> = {},
): Promise<Response> {
  return onNewConnection(`${url}/orders`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(EXAMPLE_ORDER),
  });
}
