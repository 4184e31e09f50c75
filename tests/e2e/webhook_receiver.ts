/**
 * A webhook receiver for the tests: a real HTTP server on loopback that
 * verifies every message with `standardwebhooks` (the spec's reference
 * library) and answers as the test says.
 */

import { Webhook } from "../deps.ts";

/** One message as it arrived. */
export interface Received {
  id: string;
  timestamp: number;
  signature: string;
  type: string;
  order: { id: string; status: string };
  body: string;
  /** Whether `standardwebhooks` verified it with the secret(s) given. */
  verified: boolean;
  at: number;
}

/** A receiver; `answer` decides each response (default 204). */
export interface Receiver {
  url: string;
  port: number;
  received: Received[];
  /** Secrets to verify with (any one verifying is enough). */
  secrets: string[];
  answer: (message: Received) => Response | Promise<Response>;
  close(): Promise<void>;
}

/** Starts a receiver on a free loopback port (or `port`). */
export function startReceiver(port = 0): Promise<Receiver> {
  const listening = Promise.withResolvers<number>();
  const receiver: Receiver = {
    url: "",
    port: 0,
    received: [],
    secrets: [],
    answer: () => new Response(null, { status: 204 }),
    close: () => server.shutdown(),
  };
  const server = Deno.serve({
    port,
    hostname: "127.0.0.1",
    onListen: ({ port }) => listening.resolve(port),
  }, async (request) => {
    const body = await request.text();
    const headers = Object.fromEntries(request.headers);
    const parsed = JSON.parse(body);
    const verified = receiver.secrets.some((secret) => {
      try {
        new Webhook(secret).verify(body, headers);
        return true;
      } catch {
        return false;
      }
    });
    const message: Received = {
      id: headers["webhook-id"]!,
      timestamp: Number(headers["webhook-timestamp"]),
      signature: headers["webhook-signature"]!,
      type: parsed.type,
      order: parsed.data,
      body,
      verified,
      at: Date.now(),
    };
    receiver.received.push(message);
    return await receiver.answer(message);
  });
  return listening.promise.then((bound) => {
    receiver.port = bound;
    receiver.url = `http://127.0.0.1:${bound}/hooks`;
    return receiver;
  });
}
