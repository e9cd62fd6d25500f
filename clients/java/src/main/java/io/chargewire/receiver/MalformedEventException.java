package io.chargewire.receiver;

/** The body is not a JSON object with a {@code notification} name. */
public final class MalformedEventException extends RuntimeException {
  public MalformedEventException(String message, Throwable cause) {
    super(message, cause);
  }
}
