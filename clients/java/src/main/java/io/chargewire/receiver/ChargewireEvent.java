package io.chargewire.receiver;

/** The typed payload of one notification: a record of {@link Events}, or {@link UnknownEvent}. */
public interface ChargewireEvent {
  /** The notification name, e.g. {@code SessionStartStopNotification}. */
  String notification();
}
