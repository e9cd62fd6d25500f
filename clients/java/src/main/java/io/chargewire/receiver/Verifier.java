package io.chargewire.receiver;

import java.time.Clock;
import java.time.Duration;
import java.util.List;

/**
 * One subscription's keys: its signing secrets (several during a rotation) and/or the API token that
 * created it ({@code null} when not checked).
 */
public record Verifier(List<String> secrets, String apiToken, Duration tolerance, Clock clock) {
  public Verifier {
    secrets = List.copyOf(secrets);
    if (secrets.isEmpty() && apiToken == null) {
      throw new IllegalArgumentException("give the subscription's signing secret(s), its API token, or both");
    }
  }

  /** A verifier with the default tolerance and the system clock. */
  public Verifier(List<String> secrets, String apiToken) {
    this(secrets, apiToken, Signatures.DEFAULT_TOLERANCE, Clock.systemUTC());
  }

  /** Checks every signature for which a key is held; throws {@link WebhookVerificationException}. */
  public void verify(byte[] body, HeaderLookup headers) {
    if (!secrets.isEmpty()) {
      Signatures.verifyWebhookSignature(body, headers, secrets, tolerance, clock.instant());
    }
    if (apiToken != null) {
      Signatures.verifyXSignature(body, headers, apiToken);
    }
  }

  /** Verifies, then parses into the record of its notification name. */
  public ChargewireEvent verifyEvent(byte[] body, HeaderLookup headers) {
    verify(body, headers);
    return EventParser.parse(body);
  }
}
