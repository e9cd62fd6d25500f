package io.chargewire.receiver;

import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.security.MessageDigest;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HexFormat;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

/**
 * Verification of chargewire notifications.
 *
 * <p>Two signatures ride on every notification: {@code X-Signature} (hex HMAC-SHA256 of the body keyed by
 * the API token that created the subscription) and the Standard Webhooks trio {@code webhook-id}, {@code
 * webhook-timestamp}, {@code webhook-signature} (keyed by the subscription's {@code whsec_} secret, covering
 * the id and time so a captured request cannot be replayed later). The rules and reasons are the same in
 * every language of the receiver kit; {@code clients/test-vectors.json} pins them.
 */
public final class Signatures {
  public static final Duration DEFAULT_TOLERANCE = Duration.ofMinutes(5);

  private static final Pattern X_SIGNATURE = Pattern.compile("[0-9a-f]{64}");
  private static final Pattern V1_SIGNATURE = Pattern.compile("v1,([A-Za-z0-9+/]{43}=)");
  private static final Pattern TIMESTAMP = Pattern.compile("[0-9]{1,15}");

  private Signatures() {}

  /** Checks {@code X-Signature} against the API token that created the subscription. */
  public static void verifyXSignature(byte[] body, HeaderLookup headers, String apiToken) {
    String offered = header(headers, "X-Signature");
    if (!X_SIGNATURE.matcher(offered).matches()) {
      throw new WebhookVerificationException(Reason.MALFORMED_SIGNATURE, "X-Signature is not 64 lowercase hex digits");
    }
    String expected = HexFormat.of().formatHex(hmac(apiToken.getBytes(StandardCharsets.UTF_8), body));
    if (!sameText(offered, expected)) {
      throw new WebhookVerificationException(Reason.SIGNATURE_MISMATCH, "X-Signature does not match the body");
    }
  }

  /**
   * Checks the Standard Webhooks trio with one {@code whsec_} secret or several (during a rotation): any
   * {@code v1,} entry made with any secret is enough, and the timestamp must lie within the tolerance of now.
   */
  public static void verifyWebhookSignature(
      byte[] body, HeaderLookup headers, List<String> secrets, Duration tolerance, Instant now) {
    if (secrets.isEmpty()) {
      throw new IllegalArgumentException("give at least one signing secret");
    }
    String id = header(headers, "webhook-id");
    String stamp = header(headers, "webhook-timestamp");
    String offered = header(headers, "webhook-signature");
    checkTimestamp(stamp, tolerance, now);
    List<String> candidates = v1Signatures(offered);
    byte[] prefix = (id + "." + stamp + ".").getBytes(StandardCharsets.UTF_8);
    byte[] signed = new byte[prefix.length + body.length];
    System.arraycopy(prefix, 0, signed, 0, prefix.length);
    System.arraycopy(body, 0, signed, prefix.length, body.length);
    boolean matched = false;
    for (String secret : secrets) {
      String expected = Base64.getEncoder().encodeToString(hmac(secretKey(secret), signed));
      // Every pair is compared, so the time taken does not tell which entry came close.
      for (String candidate : candidates) {
        matched = sameText(expected, candidate) | matched;
      }
    }
    if (!matched) {
      throw new WebhookVerificationException(Reason.SIGNATURE_MISMATCH, "webhook-signature does not match");
    }
  }

  /** The HMAC key of a {@code whsec_} secret: the bytes its base64 part encodes (padding optional). */
  public static byte[] secretKey(String secret) {
    String encoded = secret.startsWith("whsec_") ? secret.substring(6) : secret;
    try {
      byte[] key = Base64.getDecoder().decode(encoded);
      if (key.length == 0) {
        throw new IllegalArgumentException("a signing secret may not be empty");
      }
      return key;
    } catch (IllegalArgumentException badBase64) {
      throw new IllegalArgumentException("a signing secret must be whsec_ followed by base64", badBase64);
    }
  }

  static String header(HeaderLookup headers, String name) {
    return headers
        .get(name)
        .orElseThrow(() -> new WebhookVerificationException(Reason.MISSING_HEADER, "missing header " + name));
  }

  private static void checkTimestamp(String text, Duration tolerance, Instant now) {
    if (!TIMESTAMP.matcher(text).matches()) {
      throw new WebhookVerificationException(
          Reason.MALFORMED_TIMESTAMP, "webhook-timestamp is not a number of seconds");
    }
    long seconds = Long.parseLong(text);
    if (seconds < now.getEpochSecond() - tolerance.toSeconds()) {
      throw new WebhookVerificationException(
          Reason.TIMESTAMP_TOO_OLD, "webhook-timestamp is too far in the past (a replay?)");
    }
    if (seconds > now.getEpochSecond() + tolerance.toSeconds()) {
      throw new WebhookVerificationException(Reason.TIMESTAMP_TOO_NEW, "webhook-timestamp is too far in the future");
    }
  }

  private static List<String> v1Signatures(String value) {
    List<String> found = new ArrayList<>();
    for (String entry : value.trim().split("\\s+")) {
      Matcher match = V1_SIGNATURE.matcher(entry);
      if (match.matches()) {
        found.add(match.group(1));
      }
    }
    if (found.isEmpty()) {
      throw new WebhookVerificationException(
          Reason.MALFORMED_SIGNATURE, "webhook-signature has no well-formed v1 entry");
    }
    return found;
  }

  private static boolean sameText(String a, String b) {
    return MessageDigest.isEqual(a.getBytes(StandardCharsets.UTF_8), b.getBytes(StandardCharsets.UTF_8));
  }

  private static byte[] hmac(byte[] key, byte[] data) {
    try {
      Mac mac = Mac.getInstance("HmacSHA256");
      mac.init(new SecretKeySpec(key, "HmacSHA256"));
      return mac.doFinal(data);
    } catch (GeneralSecurityException missing) {
      throw new IllegalStateException("HmacSHA256 is part of every Java runtime", missing);
    }
  }
}
