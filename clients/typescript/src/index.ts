export { MalformedEventError, UnknownEvent, parseEvent, type ChargewireEvent } from "./event.js";
export * from "./events.js";
export { Verifier, type VerifierOptions } from "./verifier.js";
export {
  DEFAULT_TOLERANCE_S,
  WebhookVerificationError,
  header,
  secretKey,
  verifyWebhookSignature,
  verifyXSignature,
  type Body,
  type HeaderSource,
  type Reason,
  type TimeOptions,
} from "./verify.js";
