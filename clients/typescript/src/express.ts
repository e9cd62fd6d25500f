/**
 * Express integration: verifies and parses before your handler, which finds the event in
 * `res.locals.chargewireEvent`. Reads the raw body itself, so mount it before any JSON body parser.
 */
import type { NextFunction, Request, RequestHandler, Response } from "express";
import { MalformedEventError } from "./event.js";
import type { Verifier } from "./verifier.js";
import { WebhookVerificationError } from "./verify.js";

export const MAX_BODY_BYTES = 5 * 1024 * 1024;

async function rawBody(req: Request): Promise<Buffer> {
  // express.raw() may have read it already.
  if (Buffer.isBuffer(req.body)) return req.body;
  if (req.readableEnded) throw new Error("the body was already read: mount chargewireWebhook before express.json()");
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new RangeError("body too large");
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/** Middleware answering 401 (with the reason) for a bad signature, 400 for a body that is no event. */
export function chargewireWebhook(verifier: Verifier): RequestHandler {
  return (req: Request, res: Response, next: NextFunction) => {
    rawBody(req)
      .then((body) => {
        res.locals.chargewireEvent = verifier.verifyEvent(body, req.headers);
        next();
      })
      .catch((error: unknown) => {
        if (error instanceof WebhookVerificationError) res.status(401).json({ reason: error.reason });
        else if (error instanceof MalformedEventError) res.status(400).json({ message: error.message });
        else if (error instanceof RangeError) res.status(413).end();
        else next(error);
      });
  };
}
