/** A subscription's keys held together: verify a delivery and parse it in one call. */
import { type ChargewireEvent, parseEvent } from "./event.js";
import { type Body, DEFAULT_TOLERANCE_S, type HeaderSource, verifyWebhookSignature, verifyXSignature } from "./verify.js";

export interface VerifierOptions {
  /** The subscription's `whsec_` secrets: one, or several during a rotation. */
  signingSecrets?: string | readonly string[];
  /** The API token that created the subscription (keys `X-Signature`). */
  apiToken?: string;
  toleranceS?: number;
}

export class Verifier {
  private readonly secrets: readonly string[];

  constructor(private readonly options: VerifierOptions) {
    const secrets = options.signingSecrets ?? [];
    this.secrets = typeof secrets === "string" ? [secrets] : secrets;
    if (this.secrets.length === 0 && options.apiToken === undefined) {
      throw new Error("give the subscription's signing secret(s), its API token, or both");
    }
  }

  /** Check every signature for which a key is held; throws WebhookVerificationError. */
  verify(body: Body, headers: HeaderSource, now?: number): void {
    if (this.secrets.length > 0) {
      verifyWebhookSignature(body, headers, this.secrets, { toleranceS: this.options.toleranceS ?? DEFAULT_TOLERANCE_S, now });
    }
    if (this.options.apiToken !== undefined) verifyXSignature(body, headers, this.options.apiToken);
  }

  /** Verify, then parse into the typed payload of its name. */
  verifyEvent(body: Body, headers: HeaderSource, now?: number): ChargewireEvent {
    this.verify(body, headers, now);
    return parseEvent(body);
  }
}
