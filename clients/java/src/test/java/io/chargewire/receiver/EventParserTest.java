package io.chargewire.receiver;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;

class EventParserTest {
  private static final ObjectMapper MAPPER = new ObjectMapper();

  /** Every example of the catalog, by notification name. */
  private static List<Map.Entry<String, JsonNode>> catalogExamples() throws IOException {
    Path catalog = Path.of("..", "..", "chargewire", "catalog");
    List<Map.Entry<String, JsonNode>> examples = new ArrayList<>();
    MAPPER.readTree(catalog.resolve("annotations.json").toFile()).fields()
        .forEachRemaining(entry -> examples.add(Map.entry(entry.getKey(), entry.getValue().get("example"))));
    MAPPER.readTree(catalog.resolve("operational-events.json").toFile()).get("events").fields()
        .forEachRemaining(entry -> examples.add(Map.entry(entry.getKey(), entry.getValue().get("example"))));
    return examples;
  }

  @TestFactory
  Stream<DynamicTest> everyCatalogExampleParsesIntoItsRecord() throws IOException {
    List<DynamicTest> tests = new ArrayList<>();
    for (Map.Entry<String, JsonNode> example : catalogExamples()) {
      tests.add(DynamicTest.dynamicTest(example.getKey(), () -> {
        ChargewireEvent event = EventParser.parse(MAPPER.writeValueAsBytes(example.getValue()));
        assertEquals(Events.TYPES.get(example.getKey()), event.getClass());
        assertEquals(example.getKey(), event.notification());
      }));
    }
    assertEquals(Events.TYPES.size(), tests.size());
    return tests.stream();
  }

  @Test
  void knownFieldsAreTyped() {
    ChargewireEvent event = EventParser.parse(
        "{\"notification\":\"NetworkStatusNotification\",\"chargePointId\":1042,\"networkStatus\":\"available\"}"
            .getBytes(StandardCharsets.UTF_8));
    Events.NetworkStatusNotification status = assertInstanceOf(Events.NetworkStatusNotification.class, event);
    assertEquals(1042L, status.chargePointId());
  }

  @Test
  void anUnknownNameIsKeptAsAnUnknownEvent() {
    ChargewireEvent event =
        EventParser.parse("{\"notification\":\"charger.teleported\",\"chargePointId\":7}".getBytes(StandardCharsets.UTF_8));
    UnknownEvent unknown = assertInstanceOf(UnknownEvent.class, event);
    assertEquals("charger.teleported", unknown.notification());
    assertEquals(7, unknown.payload().get("chargePointId").asInt());
  }

  @Test
  void aBodyWithoutANotificationNameIsMalformed() {
    for (String body : List.of("not json", "[1]", "{\"chargePointId\":7}", "{\"notification\":3}")) {
      assertThrows(MalformedEventException.class, () -> EventParser.parse(body.getBytes(StandardCharsets.UTF_8)));
    }
  }
}
