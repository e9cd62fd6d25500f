package io.chargewire.receiver;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;

import com.fasterxml.jackson.databind.JsonNode;
import jakarta.servlet.FilterChain;
import jakarta.servlet.ReadListener;
import jakarta.servlet.ServletInputStream;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;
import java.io.ByteArrayInputStream;
import java.lang.reflect.Proxy;
import java.time.Clock;
import java.time.Instant;
import java.time.ZoneOffset;
import java.util.Base64;
import java.util.HashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;

class ChargewireWebhookFilterTest {
  /** What the filter did with one request: the attribute it set, the error it sent, whether it went on. */
  private static final class Outcome {
    final Map<String, Object> attributes = new HashMap<>();
    Integer error;
    boolean passedOn;
  }

  private static Outcome run(JsonNode vector, byte[] body) throws Exception {
    Map<String, String> headers = VectorsTest.headers(vector);
    Clock clock = Clock.fixed(Instant.ofEpochSecond(vector.get("now").asLong()), ZoneOffset.UTC);
    Verifier verifier = new Verifier(VectorsTest.secrets(vector), null, Signatures.DEFAULT_TOLERANCE, clock);
    Outcome outcome = new Outcome();
    ByteArrayInputStream bytes = new ByteArrayInputStream(body);
    ServletInputStream stream = new ServletInputStream() {
      @Override public int read() { return bytes.read(); }
      @Override public boolean isFinished() { return bytes.available() == 0; }
      @Override public boolean isReady() { return true; }
      @Override public void setReadListener(ReadListener listener) {}
    };
    HttpServletRequest request = (HttpServletRequest) Proxy.newProxyInstance(
        ChargewireWebhookFilterTest.class.getClassLoader(), new Class<?>[] {HttpServletRequest.class}, (proxy, method, args) -> switch (method.getName()) {
          case "getInputStream" -> stream;
          case "getHeader" -> HeaderLookup.of(headers).get((String) args[0]).orElse(null);
          case "setAttribute" -> outcome.attributes.put((String) args[0], args[1]);
          default -> throw new UnsupportedOperationException(method.getName());
        });
    HttpServletResponse response = (HttpServletResponse) Proxy.newProxyInstance(
        ChargewireWebhookFilterTest.class.getClassLoader(), new Class<?>[] {HttpServletResponse.class}, (proxy, method, args) -> {
          if (method.getName().equals("sendError")) {
            outcome.error = (Integer) args[0];
            return null;
          }
          throw new UnsupportedOperationException(method.getName());
        });
    FilterChain chain = (req, res) -> outcome.passedOn = true;
    new ChargewireWebhookFilter(verifier).doFilter(request, response, chain);
    return outcome;
  }


  private static JsonNode validVector() throws Exception {
    for (JsonNode vector : VectorsTest.vectors().get("cases")) {
      if (vector.get("name").asText().equals("standard webhooks valid")) {
        return vector;
      }
    }
    throw new AssertionError("no valid vector");
  }

  @Test
  void aVerifiedRequestReachesTheServletWithItsEvent() throws Exception {
    JsonNode vector = validVector();
    Outcome outcome = run(vector, Base64.getDecoder().decode(vector.get("body_base64").asText()));
    assertEquals(true, outcome.passedOn);
    assertInstanceOf(Events.SessionStartStopNotification.class, outcome.attributes.get(ChargewireWebhookFilter.EVENT_ATTRIBUTE));
  }

  @Test
  void aTamperedRequestIsAnswered401AndStopsThere() throws Exception {
    JsonNode vector = validVector();
    byte[] body = Base64.getDecoder().decode(vector.get("body_base64").asText());
    body[body.length - 2] ^= 1;
    Outcome outcome = run(vector, body);
    assertEquals(401, outcome.error);
    assertEquals(false, outcome.passedOn);
    assertNull(outcome.attributes.get(ChargewireWebhookFilter.EVENT_ATTRIBUTE));
  }
}
