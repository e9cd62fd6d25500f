package io.chargewire.receiver;

import com.fasterxml.jackson.databind.JsonNode;

/** An event whose name this version of the kit does not know yet, kept whole. */
public record UnknownEvent(String notification, JsonNode payload) implements ChargewireEvent {}
