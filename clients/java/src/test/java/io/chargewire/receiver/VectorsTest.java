package io.chargewire.receiver;

import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

class VectorsTest {
  static JsonNode vectors() throws IOException {
    return new ObjectMapper().readTree(Path.of("..", "test-vectors.json").toFile());
  }

  static Map<String, String> headers(JsonNode vector) {
    Map<String, String> headers = new LinkedHashMap<>();
    vector.get("headers").fields().forEachRemaining(entry -> headers.put(entry.getKey(), entry.getValue().asText()));
    return headers;
  }

  static List<String> secrets(JsonNode vector) {
    List<String> secrets = new ArrayList<>();
    vector.get("secrets").forEach(secret -> secrets.add(secret.asText()));
    return secrets;
  }

  private static String verdict(JsonNode vector) {
    byte[] body = Base64.getDecoder().decode(vector.get("body_base64").asText());
    HeaderLookup headers = HeaderLookup.of(headers(vector));
    try {
      if (vector.get("check").asText().equals("x-signature")) {
        Signatures.verifyXSignature(body, headers, vector.get("api_token").asText());
      } else {
        Signatures.verifyWebhookSignature(
            body,
            headers,
            secrets(vector),
            Duration.ofSeconds(vector.get("tolerance_s").asLong()),
            Instant.ofEpochSecond(vector.get("now").asLong()));
      }
    } catch (WebhookVerificationException refused) {
      return refused.reason().code();
    }
    return null;
  }

  @TestFactory
  Stream<DynamicTest> everyVectorReachesItsVerdict() throws IOException {
    List<DynamicTest> tests = new ArrayList<>();
    for (JsonNode vector : vectors().get("cases")) {
      JsonNode reason = vector.get("expected").get("reason");
      String expected = reason.isNull() ? null : reason.asText();
      tests.add(DynamicTest.dynamicTest(vector.get("name").asText(), () -> assertEquals(expected, verdict(vector))));
    }
    return tests.stream();
  }
}
