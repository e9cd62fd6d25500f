package io.chargewire.receiver.examples;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.sun.net.httpserver.HttpServer;
import io.chargewire.receiver.ChargewireEvent;
import io.chargewire.receiver.Events;
import io.chargewire.receiver.MalformedEventException;
import io.chargewire.receiver.Verifier;
import io.chargewire.receiver.WebhookVerificationException;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * An example webhook receiver on the JDK's own HTTP server, recording every verified event as one JSON line
 * (the receiver kit's end-to-end test reads them). In a servlet container or Spring Boot, register
 * {@link io.chargewire.receiver.ChargewireWebhookFilter} instead of calling the verifier by hand.
 *
 * <pre>CHARGEWIRE_SIGNING_SECRETS=whsec_... CHARGEWIRE_API_TOKEN=cw_... PORT=3000 java ... ReceiverExample</pre>
 */
public final class ReceiverExample {
  private static final ObjectMapper JSON = new ObjectMapper();

  private ReceiverExample() {}

  public static void main(String[] args) throws IOException {
    String secrets = System.getenv().getOrDefault("CHARGEWIRE_SIGNING_SECRETS", "");
    List<String> secretList = Arrays.stream(secrets.trim().split("\\s+")).filter(s -> !s.isEmpty()).toList();
    Verifier verifier = new Verifier(secretList, System.getenv("CHARGEWIRE_API_TOKEN"));
    String recordFile = System.getenv("RECEIVER_RECORD_FILE");
    int port = Integer.parseInt(System.getenv().getOrDefault("PORT", "3000"));
    HttpServer server = HttpServer.create(new InetSocketAddress("127.0.0.1", port), 0);
    server.createContext("/health", exchange -> {
      exchange.sendResponseHeaders(200, -1);
      exchange.close();
    });
    server.createContext("/hooks", exchange -> {
      byte[] body;
      try (InputStream input = exchange.getRequestBody()) {
        body = input.readAllBytes();
      }
      int status;
      try {
        ChargewireEvent event = verifier.verifyEvent(
            body, name -> Optional.ofNullable(exchange.getRequestHeaders().getFirst(name)));
        if (event instanceof Events.SessionStartStopNotification session) {
          System.out.println("session " + session.sessionId() + " stopped at meter " + session.meterStop());
        }
        record(recordFile, event, exchange.getRequestHeaders().getFirst("webhook-id"));
        status = 204; // answer fast; slow work belongs in a queue after this
      } catch (WebhookVerificationException refused) {
        status = 401;
      } catch (MalformedEventException malformed) {
        status = 400;
      }
      exchange.sendResponseHeaders(status, -1);
      exchange.close();
    });
    server.start();
    System.out.println("listening on http://127.0.0.1:" + port + "/hooks");
  }

  private static synchronized void record(String recordFile, ChargewireEvent event, String webhookId)
      throws IOException {
    if (recordFile == null) {
      return;
    }
    Map<String, String> line = Map.of(
        "notification", event.notification(), "type", event.getClass().getSimpleName(), "webhookId", webhookId);
    Files.writeString(Path.of(recordFile), JSON.writeValueAsString(line) + "\n", StandardCharsets.UTF_8,
        StandardOpenOption.CREATE, StandardOpenOption.APPEND);
  }

}
