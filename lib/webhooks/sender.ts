/**
 * One webhook POST, to the address that was checked. `fetch` resolves a
 * name itself, after any check of ours, so a name that answers a public
 * address to the check and a private one to the connection (DNS
 * rebinding) would get through. This sender connects through `node:http`,
 * whose `lookup` hook is the only resolution: the addresses it returns are
 * checked against the policy and are the ones connected to. TLS still
 * verifies the certificate against the URL's host name.
 *
 * Redirects are never followed, at most 64 KiB of an answer is read, and
 * each attempt is bounded by `timeoutMs`, the answer's body included.
 * Connections are kept alive between messages to the same host and port;
 * a kept connection's address was checked when it was made.
 *
 * @module
 */

import http from "node:http";
import https from "node:https";
import type { LookupAddress } from "node:dns";
import {
  type AddressPolicy,
  blockedAddress,
  refuseUrl,
  type Resolver,
  systemResolver,
} from "./address_policy.ts";

/** The most of an answer's body read (the rest is discarded). */
export const MAX_ANSWER_BYTES = 64 * 1024;

/** What one POST came to. */
export interface SendResult {
  ok: boolean;
  status?: number;
  /** Why it did not deliver (`null` when it did). */
  error: string | null;
}

/** Options for {@linkcode WebhookSender}. */
export interface WebhookSenderOptions {
  policy: AddressPolicy;
  /** Resolves names (default: the system's, as any connection would). */
  resolve?: Resolver | undefined;
  /** One attempt's bound, the answer included (default 10 s). */
  timeoutMs?: number | undefined;
  /** Certificates to trust besides the system's (tests). */
  ca?: string[] | undefined;
}

/** A refusal by the address policy, made while connecting. */
class RefusedAddress extends Error {}

type LookupCallback = (
  error: Error | null,
  address: string | LookupAddress[],
  family?: number,
) => void;

/** Sends webhook POSTs; {@linkcode close} ends its kept connections. */
export class WebhookSender {
  readonly #options: WebhookSenderOptions;
  readonly #http: http.Agent;
  readonly #https: https.Agent;

  /** A sender under `options.policy`. */
  constructor(options: WebhookSenderOptions) {
    this.#options = options;
    this.#http = new http.Agent({ keepAlive: true });
    this.#https = new https.Agent({
      keepAlive: true,
      ...(options.ca ? { ca: options.ca } : {}),
    });
  }

  /** Ends the kept connections. */
  close(): void {
    this.#http.destroy();
    this.#https.destroy();
  }

  /** POSTs `body` to `url` with `headers`. Never throws. */
  send(
    url: string,
    headers: Record<string, string>,
    body: string,
  ): Promise<SendResult> {
    const { policy, timeoutMs = 10_000 } = this.#options;
    const refused = refuseUrl(url, policy);
    if (refused !== undefined) {
      return Promise.resolve({ ok: false, error: `refused: ${refused}` });
    }
    const target = new URL(url);
    const bytes = encoder.encode(body);
    const client = target.protocol === "https:" ? https : http;
    const { promise, resolve } = Promise.withResolvers<SendResult>();
    // The first of the answer, an error and the timeout settles it.
    const finish = (result: SendResult) => {
      clearTimeout(timer);
      resolve(result);
    };
    const request = client.request(target, {
      method: "POST",
      agent: target.protocol === "https:" ? this.#https : this.#http,
      headers: { ...headers, "content-length": String(bytes.byteLength) },
      lookup: (
        hostname: string,
        options: { all?: boolean | undefined },
        done: LookupCallback,
      ) => this.#lookup(hostname, options.all === true, done),
    }, (response) => {
      const status = response.statusCode ?? 0;
      const ok = status >= 200 && status < 300;
      const answered = () =>
        finish({
          ok,
          status,
          error: ok ? null : `the endpoint answered ${status}`,
        });
      let read = 0;
      response.on("data", (chunk: Uint8Array) => {
        read += chunk.byteLength;
        // Enough: the rest is not read, and the connection not kept.
        if (read >= MAX_ANSWER_BYTES) {
          response.destroy();
          answered();
        }
      });
      response.on("end", answered);
      response.on("error", answered);
    });
    const timer = setTimeout(() => {
      finish({ ok: false, error: `no answer within ${timeoutMs} ms` });
      request.destroy();
    }, timeoutMs);
    request.on("error", (error: Error) =>
      finish({
        ok: false,
        error: error instanceof RefusedAddress
          ? `refused: ${error.message}`
          : `could not send: ${error.message}`,
      }));
    request.end(bytes);
    return promise;
  }

  /**
   * The connection's only resolution: every address of the name is
   * checked, and the ones returned are what is connected to.
   */
  #lookup(hostname: string, all: boolean, done: LookupCallback): void {
    const { policy, resolve = systemResolver } = this.#options;
    resolve(hostname).then((addresses) => {
      if (addresses.length === 0) {
        done(new Error(`${hostname} does not resolve`), []);
        return;
      }
      const blocked = policy.allowPrivate
        ? undefined
        : blockedAddress(hostname, addresses);
      if (blocked !== undefined) done(new RefusedAddress(blocked), []);
      else if (all) {
        done(
          null,
          addresses.map((address) => ({ address, family: familyOf(address) })),
        );
      } else done(null, addresses[0]!, familyOf(addresses[0]!));
    }, (error: Error) => done(error, []));
  }
}

const encoder = new TextEncoder();

const familyOf = (address: string) => address.includes(":") ? 6 : 4;
