import assert from "node:assert/strict";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import express from "express";
import { type ChargewireEvent, Verifier } from "../src/index.js";
import { chargewireWebhook } from "../src/express.js";
import { vectors } from "./vectors.js";

test("the Express middleware hands the verified event on and refuses a tampered body", async () => {
  const c = vectors.cases.find((v) => v.name === "standard webhooks valid")!;
  const verifier = new Verifier({ signingSecrets: c.secrets });
  // The vector's clock is fixed, so the middleware's verifier checks at that time.
  const atVectorTime = { verifyEvent: (b: Buffer, h: Record<string, string>) => verifier.verifyEvent(b, h, c.now) };
  const seen: ChargewireEvent[] = [];
  const app = express();
  app.post("/hooks", chargewireWebhook(atVectorTime as unknown as Verifier), (_req, res) => {
    seen.push(res.locals.chargewireEvent as ChargewireEvent);
    res.status(204).end();
  });
  const server = app.listen(0, "127.0.0.1");
  await new Promise((resolve) => server.once("listening", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`;
  try {
    const body = Buffer.from(c.body_base64, "base64");
    const ok = await fetch(url, { method: "POST", headers: c.headers, body });
    assert.equal(ok.status, 204);
    assert.equal((seen[0] as { notification: string }).notification, "SessionStartStopNotification");
    const tampered = await fetch(url, { method: "POST", headers: c.headers, body: Buffer.concat([body, Buffer.from(" ")]) });
    assert.equal(tampered.status, 401);
    assert.deepEqual(await tampered.json(), { reason: "signature_mismatch" });
  } finally {
    server.close();
  }
});

test("the Express middleware says so when a JSON parser read the body first", async () => {
  const failures: string[] = [];
  const app = express();
  app.use(express.json({ type: "*/*" }));
  app.post("/hooks", chargewireWebhook(new Verifier({ signingSecrets: ["whsec_AAAA"] })), (_req, res) => res.end());
  app.use((error: Error, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
    failures.push(error.message);
    res.status(500).end();
  });
  const server = app.listen(0, "127.0.0.1");
  await new Promise((resolve) => server.once("listening", resolve));
  try {
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`;
    const answer = await fetch(url, { method: "POST", body: '{"notification":"x"}' });
    assert.equal(answer.status, 500);
    assert.match(failures[0], /before express\.json\(\)/);
  } finally {
    server.close();
  }
});
