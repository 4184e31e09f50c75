/**
 * Signing a webhook message as Standard Webhooks 1.0.0 says: a secret is
 * `whsec_` and the base64 of its key; the signature of a message is
 * `v1,` and the base64 of HMAC-SHA256 over `id.timestamp.body`, and the
 * `webhook-signature` header carries one per secret in use, separated by
 * spaces (two while a rotated secret overlaps the new one). WebCrypto does
 * the HMAC; the runtime's own `Uint8Array` base64 the encoding.
 *
 * @module
 */

const PREFIX = "whsec_";

/** Bytes of key in a new secret: above the spec's minimum of 24. */
const KEY_BYTES = 32;

/** A new signing secret: `whsec_` and the base64 of 32 random bytes. */
export function newSecret(): string {
  return PREFIX + crypto.getRandomValues(new Uint8Array(KEY_BYTES)).toBase64();
}

/** The key bytes of `secret`; a RangeError for one not of the form. */
function keyOf(secret: string): Uint8Array {
  if (!secret.startsWith(PREFIX)) {
    throw new RangeError("A webhook secret starts with whsec_");
  }
  return Uint8Array.fromBase64(secret.slice(PREFIX.length));
}

// Imported once per secret: importing the key is most of a signature's cost.
const keys = new Map<string, Promise<CryptoKey>>();

function cryptoKeyOf(secret: string): Promise<CryptoKey> {
  let key = keys.get(secret);
  if (key === undefined) {
    key = crypto.subtle.importKey(
      "raw",
      keyOf(secret).buffer as ArrayBuffer,
      { name: "HMAC", hash: "SHA-256" },
      false,
      ["sign"],
    );
    keys.set(secret, key);
    // Secrets are few (two per endpoint at most); a rotated-away one is
    // dropped when the table grows past what endpoints could hold.
    if (keys.size > 10_000) keys.delete(keys.keys().next().value!);
  }
  return key;
}

/**
 * The `webhook-signature` header of a message: `v1,<signature>` for each of
 * `secrets`, separated by spaces.
 */
export async function signatureHeader(
  secrets: readonly string[],
  id: string,
  timestampSeconds: number,
  body: string,
): Promise<string> {
  const content = new TextEncoder().encode(`${id}.${timestampSeconds}.${body}`);
  const signatures = await Promise.all(secrets.map(async (secret) => {
    const mac = await crypto.subtle.sign(
      "HMAC",
      await cryptoKeyOf(secret),
      content,
    );
    return `v1,${new Uint8Array(mac).toBase64()}`;
  }));
  return signatures.join(" ");
}
