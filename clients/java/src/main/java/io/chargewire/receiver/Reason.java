package io.chargewire.receiver;

/** Why a notification was refused; {@link #code()} is the same word in every client of the receiver kit. */
public enum Reason {
  MISSING_HEADER,
  MALFORMED_TIMESTAMP,
  TIMESTAMP_TOO_OLD,
  TIMESTAMP_TOO_NEW,
  MALFORMED_SIGNATURE,
  SIGNATURE_MISMATCH;

  /** The reason as the shared test vectors and the other languages spell it, e.g. {@code signature_mismatch}. */
  public String code() {
    return name().toLowerCase(java.util.Locale.ROOT);
  }
}
