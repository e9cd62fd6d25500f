package io.chargewire.receiver;

import java.util.Map;
import java.util.Optional;

/** Finds a header by name, whatever the case of its key. */
@FunctionalInterface
public interface HeaderLookup {
  Optional<String> get(String name);

  /** Headers from a plain map (Kafka record headers, a test). */
  static HeaderLookup of(Map<String, String> headers) {
    return name -> {
      String exact = headers.get(name);
      if (exact != null) {
        return Optional.of(exact);
      }
      return headers.entrySet().stream()
          .filter(entry -> entry.getKey().equalsIgnoreCase(name))
          .map(Map.Entry::getValue)
          .findFirst();
    };
  }
}
