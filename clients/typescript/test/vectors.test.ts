import assert from "node:assert/strict";
import { test } from "node:test";
import { WebhookVerificationError, verifyWebhookSignature, verifyXSignature } from "../src/index.js";
import { type VectorCase, vectors } from "./vectors.js";

function verdict(c: VectorCase): string | null {
  const body = Buffer.from(c.body_base64, "base64");
  try {
    if (c.check === "x-signature") verifyXSignature(body, c.headers, c.api_token ?? "");
    else verifyWebhookSignature(body, c.headers, c.secrets, { toleranceS: c.tolerance_s, now: c.now });
  } catch (error) {
    if (error instanceof WebhookVerificationError) return error.reason;
    throw error;
  }
  return null;
}

for (const c of vectors.cases) {
  test(`vector: ${c.name}`, () => {
    assert.equal(verdict(c), c.expected.reason);
  });
}

test("fetch-style Headers are read as well", () => {
  const c = vectors.cases.find((v) => v.name === "standard webhooks valid")!;
  verifyWebhookSignature(Buffer.from(c.body_base64, "base64"), new Headers(c.headers), c.secrets, { now: c.now });
});
