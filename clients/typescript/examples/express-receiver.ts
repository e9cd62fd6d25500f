/**
 * An example webhook receiver: Express with the chargewire middleware, recording every verified event as
 * one JSON line (the receiver kit's end-to-end test reads them).
 *
 *   CHARGEWIRE_SIGNING_SECRETS=whsec_... CHARGEWIRE_API_TOKEN=cw_... PORT=3000 node dist/examples/express-receiver.js
 */
import { appendFileSync } from "node:fs";
import express from "express";
import { type ChargewireEvent, UnknownEvent, Verifier } from "../src/index.js";
import { chargewireWebhook } from "../src/express.js";

const verifier = new Verifier({
  signingSecrets: (process.env.CHARGEWIRE_SIGNING_SECRETS ?? "").split(/\s+/).filter(Boolean),
  apiToken: process.env.CHARGEWIRE_API_TOKEN || undefined,
});
const recordFile = process.env.RECEIVER_RECORD_FILE;

const app = express();
app.post("/hooks", chargewireWebhook(verifier), (req, res) => {
  const event = res.locals.chargewireEvent as ChargewireEvent;
  if (event instanceof UnknownEvent) {
    console.log(`an event this version does not know: ${event.notification}`);
  } else if (event.notification === "SessionStartStopNotification") {
    console.log(`session ${event.sessionId} stopped at meter ${event.meterStop}`); // typed fields
  }
  if (recordFile) {
    const type = event instanceof UnknownEvent ? "UnknownEvent" : "KnownEvent";
    const line = { notification: event.notification, type, webhookId: req.header("webhook-id") };
    appendFileSync(recordFile, JSON.stringify(line) + "\n");
  }
  // Answer fast; slow work belongs in a queue after this 204.
  res.status(204).end();
});
app.get("/health", (_req, res) => res.status(200).end());
app.listen(Number(process.env.PORT ?? 3000), "127.0.0.1");
