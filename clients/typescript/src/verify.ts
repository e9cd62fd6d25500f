/**
 * Verification of chargewire notifications.
 *
 * Two signatures ride on every notification: `X-Signature` (hex HMAC-SHA256 of the body keyed by the API
 * token that created the subscription) and the Standard Webhooks trio `webhook-id`, `webhook-timestamp`,
 * `webhook-signature` (keyed by the subscription's `whsec_` secret, covering the id and time so a captured
 * request cannot be replayed later). The rules and reasons are the same in every language of the receiver
 * kit; `clients/test-vectors.json` pins them.
 */
import { createHmac, timingSafeEqual } from "node:crypto";

export const DEFAULT_TOLERANCE_S = 300;

/** Why a notification was refused; the same words in every client of the receiver kit. */
export type Reason =
  | "missing_header"
  | "malformed_timestamp"
  | "timestamp_too_old"
  | "timestamp_too_new"
  | "malformed_signature"
  | "signature_mismatch";

/** A signature or timestamp does not check out; `reason` says which rule failed. */
export class WebhookVerificationError extends Error {
  constructor(
    readonly reason: Reason,
    message: string,
  ) {
    super(message);
    this.name = "WebhookVerificationError";
  }
}

/** Node's incoming headers, a plain record, or anything with `get` (fetch's Headers). */
export type HeaderSource =
  | Record<string, string | string[] | undefined>
  | { get(name: string): string | null | undefined };

/** The bytes that were signed: the raw body, never a re-serialised object. */
export type Body = Uint8Array | string;

const X_SIGNATURE = /^[0-9a-f]{64}$/;
const V1_SIGNATURE = /^v1,([A-Za-z0-9+/]{43}=)$/;
const TIMESTAMP = /^[0-9]{1,15}$/;

/** The value of header `name`, whatever the case of its key. */
export function header(headers: HeaderSource, name: string): string {
  const value = lookup(headers, name);
  if (value === undefined) throw new WebhookVerificationError("missing_header", `missing header ${name}`);
  return value;
}

function lookup(headers: HeaderSource, name: string): string | undefined {
  if (typeof headers.get === "function") return headers.get(name) ?? undefined;
  const record = headers as Record<string, string | string[] | undefined>;
  const key = Object.keys(record).find((k) => k.toLowerCase() === name.toLowerCase());
  const value = key === undefined ? undefined : record[key];
  return Array.isArray(value) ? value[0] : value;
}

function bytes(body: Body): Buffer {
  return typeof body === "string" ? Buffer.from(body, "utf8") : Buffer.from(body);
}

function sameText(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

/** The HMAC key of a `whsec_` secret: the bytes its base64 part encodes. */
export function secretKey(secret: string): Buffer {
  const encoded = secret.startsWith("whsec_") ? secret.slice(6) : secret;
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(encoded)) throw new Error("a signing secret must be whsec_ followed by base64");
  return Buffer.from(encoded, "base64");
}

/** Check `X-Signature` against the API token that created the subscription. */
export function verifyXSignature(body: Body, headers: HeaderSource, apiToken: string): void {
  const offered = header(headers, "X-Signature");
  if (!X_SIGNATURE.test(offered)) {
    throw new WebhookVerificationError("malformed_signature", "X-Signature is not 64 lowercase hex digits");
  }
  const expected = createHmac("sha256", apiToken).update(bytes(body)).digest("hex");
  if (!sameText(offered, expected)) {
    throw new WebhookVerificationError("signature_mismatch", "X-Signature does not match the body");
  }
}

export interface TimeOptions {
  /** How far webhook-timestamp may lie from now, in seconds. */
  toleranceS?: number;
  /** Now, in Unix seconds; the clock when absent. */
  now?: number;
}

/**
 * Check the Standard Webhooks trio with one `whsec_` secret or several (during a rotation): any `v1,`
 * entry made with any secret is enough, and the timestamp must lie within the tolerance of now.
 */
export function verifyWebhookSignature(
  body: Body,
  headers: HeaderSource,
  secrets: string | readonly string[],
  options: TimeOptions = {},
): void {
  const keys = (typeof secrets === "string" ? [secrets] : secrets).map(secretKey);
  if (keys.length === 0) throw new Error("give at least one signing secret");
  const id = header(headers, "webhook-id");
  const stamp = header(headers, "webhook-timestamp");
  const offered = header(headers, "webhook-signature");
  checkTimestamp(stamp, options.toleranceS ?? DEFAULT_TOLERANCE_S, options.now ?? Date.now() / 1000);
  const candidates = v1Signatures(offered);
  const signed = Buffer.concat([Buffer.from(`${id}.${stamp}.`), bytes(body)]);
  let matched = false;
  for (const key of keys) {
    const expected = createHmac("sha256", key).update(signed).digest("base64");
    // Every pair is compared, so the time taken does not tell which entry came close.
    for (const candidate of candidates) matched = sameText(expected, candidate) || matched;
  }
  if (!matched) throw new WebhookVerificationError("signature_mismatch", "webhook-signature does not match");
}

function checkTimestamp(text: string, toleranceS: number, now: number): void {
  if (!TIMESTAMP.test(text)) {
    throw new WebhookVerificationError("malformed_timestamp", "webhook-timestamp is not a number of seconds");
  }
  const seconds = Number(text);
  if (seconds < now - toleranceS) {
    throw new WebhookVerificationError("timestamp_too_old", "webhook-timestamp is too far in the past (a replay?)");
  }
  if (seconds > now + toleranceS) {
    throw new WebhookVerificationError("timestamp_too_new", "webhook-timestamp is too far in the future");
  }
}

function v1Signatures(value: string): string[] {
  const found = value
    .split(/\s+/)
    .map((entry) => V1_SIGNATURE.exec(entry)?.[1])
    .filter((match): match is string => match !== undefined);
  if (found.length === 0) {
    throw new WebhookVerificationError("malformed_signature", "webhook-signature has no well-formed v1 entry");
  }
  return found;
}
