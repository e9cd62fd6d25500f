package io.chargewire.receiver;

import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;

/** Reads a verified body as the record of its {@code notification} name. */
public final class EventParser {
  // Fields the catalog adds later must reach the subscriber, not break the parse.
  private static final ObjectMapper MAPPER =
      new ObjectMapper().configure(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES, false);

  private EventParser() {}

  /** The typed record of {@code body}, or an {@link UnknownEvent} for a name outside the catalog. */
  public static ChargewireEvent parse(byte[] body) {
    JsonNode tree;
    try {
      tree = MAPPER.readTree(body);
    } catch (IOException notJson) {
      throw new MalformedEventException("the body is not JSON", notJson);
    }
    if (tree == null || !tree.isObject() || !tree.path("notification").isTextual()) {
      throw new MalformedEventException("the body is not a JSON object with a notification name", null);
    }
    String name = tree.get("notification").asText();
    Class<? extends ChargewireEvent> type = Events.TYPES.get(name);
    if (type == null) {
      return new UnknownEvent(name, tree);
    }
    try {
      return MAPPER.treeToValue(tree, type);
    } catch (IOException wrongShape) {
      throw new MalformedEventException("the body does not have the shape of " + name, wrongShape);
    }
  }
}
