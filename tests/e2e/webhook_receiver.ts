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
  /** The sender's port: which process sent it ({@linkcode senderOwns}). */
  remotePort: number;
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

/**
 * Whether process `pid` holds the loopback connection whose own port is
 * `port` (a message's `remotePort`): the kernel's socket table names the
 * connection's inode, and the process's descriptors name its sockets'.
 */
export async function senderOwns(pid: number, port: number): Promise<boolean> {
  const hex = `:${port.toString(16).toUpperCase().padStart(4, "0")}`;
  const inodes = new Set<string>();
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    const text = await Deno.readTextFile(table).catch(() => "");
    for (const line of text.split("\n").slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (fields[1]?.endsWith(hex)) inodes.add(fields[9]!);
    }
  }
  for await (const entry of Deno.readDir(`/proc/${pid}/fd`)) {
    const link = await Deno.readLink(`/proc/${pid}/fd/${entry.name}`)
      .catch(() => "");
    const inode = /^socket:\[(\d+)\]$/.exec(link)?.[1];
    if (inode !== undefined && inodes.has(inode)) return true;
  }
  return false;
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
  }, async (request, info) => {
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
      remotePort: (info.remoteAddr as Deno.NetAddr).port,
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
