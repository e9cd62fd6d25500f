package io.chargewire.receiver;

/** A signature or timestamp does not check out; {@link #reason()} says which rule failed. */
public final class WebhookVerificationException extends RuntimeException {
  private final Reason reason;

  public WebhookVerificationException(Reason reason, String message) {
    super(message);
    this.reason = reason;
  }

  public Reason reason() {
    return reason;
  }
}
