/**
 * Where a webhook may be sent: an `https:` URL (or `http:` where allowed)
 * whose host is not, and does not resolve to, an address in a loopback,
 * private, link-local, unique-local, unspecified or other reserved range
 * (the cloud metadata address 169.254.169.254 among them), unless private
 * addresses are allowed. ipaddr.js says which range an address is in.
 *
 * @module
 */

import { lookup } from "node:dns/promises";
import ipaddr from "ipaddr.js";

/** What the policy allows. */
export interface AddressPolicy {
  /** `http:` URLs too (`WEBHOOK_ALLOW_HTTP`). */
  allowHttp: boolean;
  /** Every address, private ones too (`WEBHOOK_ALLOW_PRIVATE`). */
  allowPrivate: boolean;
}

// The only ranges an outbound request may reach: the public internet.
const PUBLIC_RANGES = new Set(["unicast"]);

/** Whether `address` (an IPv4 or IPv6 literal) is outside the public ranges. */
export function isPrivateAddress(address: string): boolean {
  let parsed = ipaddr.parse(address);
  // ::ffff:10.0.0.1 is 10.0.0.1.
  if (parsed.kind() === "ipv6") {
    const v6 = parsed as ipaddr.IPv6;
    if (v6.isIPv4MappedAddress()) parsed = v6.toIPv4Address();
  }
  return !PUBLIC_RANGES.has(parsed.range());
}

/** The host of `url` as an address literal, if it is one (IPv6 unbracketed). */
function literalHost(url: URL): string | undefined {
  const host = url.hostname.replace(/^\[|\]$/g, "");
  return ipaddr.isValid(host) ? host : undefined;
}

/**
 * Why `raw` may not be a webhook's URL, or `undefined` when it may (as far
 * as can be told without resolving its name: {@linkcode resolveAllowed}
 * checks that, at registration and again before every connection).
 */
export function refuseUrl(
  raw: string,
  policy: AddressPolicy,
): string | undefined {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return "url must be an absolute URL";
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    return "url must be https: (or http: where WEBHOOK_ALLOW_HTTP allows it)";
  }
  if (url.protocol === "http:" && !policy.allowHttp) {
    return "url must be https:; http: is allowed only with WEBHOOK_ALLOW_HTTP=on";
  }
  if (url.username || url.password) {
    return "url must not carry a user name or password";
  }
  const literal = literalHost(url);
  if (
    literal !== undefined && !policy.allowPrivate && isPrivateAddress(literal)
  ) {
    return `url's address ${literal} is in a private, loopback, link-local or reserved range; allowed only with WEBHOOK_ALLOW_PRIVATE=on`;
  }
  return undefined;
}

/** Resolves a name to its addresses (A and AAAA). */
export type Resolver = (hostname: string) => Promise<string[]>;

/**
 * Resolves as a connection would (`getaddrinfo`: the hosts file, then
 * DNS), both families; a name that does not resolve has no addresses.
 */
export const systemResolver: Resolver = async (hostname) => {
  try {
    const found = await lookup(hostname, { all: true });
    return found.map((entry) => entry.address);
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === "ENOTFOUND" || code === "ENODATA") return [];
    throw error;
  }
};

/**
 * Why `hostname`, resolved to `addresses`, may not be reached, or
 * `undefined`: any address outside the public ranges refuses it (an
 * attacker's name may resolve to both).
 */
export function blockedAddress(
  hostname: string,
  addresses: string[],
): string | undefined {
  const blocked = addresses.find(isPrivateAddress);
  return blocked === undefined
    ? undefined
    : `${hostname} resolves to ${blocked}, in a private, loopback, link-local or reserved range`;
}

/**
 * Why the host of `url` may not be reached now, or `undefined`: a name
 * that resolves to no address, or to any address outside the public
 * ranges (an attacker's name may resolve to both), is refused.
 */
export async function resolveAllowed(
  url: URL,
  policy: AddressPolicy,
  resolve: Resolver = systemResolver,
): Promise<string | undefined> {
  if (policy.allowPrivate) return undefined;
  const literal = literalHost(url);
  const addresses = literal !== undefined
    ? [literal]
    : await resolve(url.hostname);
  if (addresses.length === 0) return `${url.hostname} does not resolve`;
  return blockedAddress(url.hostname, addresses);
}
