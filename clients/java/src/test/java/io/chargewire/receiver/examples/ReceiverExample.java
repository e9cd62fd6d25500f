package io.chargewire.receiver.examples;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.chargewire.receiver.ChargewireEvent;
import io.chargewire.receiver.ChargewireWebhookFilter;
import io.chargewire.receiver.Events;
import io.chargewire.receiver.Verifier;
import jakarta.servlet.DispatcherType;
import jakarta.servlet.http.HttpServlet;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.EnumSet;
import java.util.List;
import java.util.Map;
import org.eclipse.jetty.ee10.servlet.FilterHolder;
import org.eclipse.jetty.ee10.servlet.ServletContextHandler;
import org.eclipse.jetty.ee10.servlet.ServletHolder;
import org.eclipse.jetty.server.Server;

/**
 * An example webhook receiver: {@link ChargewireWebhookFilter} in front of a servlet, in an embedded Jetty
 * (the same filter registers in any Servlet 6 container or Spring Boot 3). It records every verified event as
 * one JSON line (the receiver kit's end-to-end test reads them).
 *
 * <pre>CHARGEWIRE_SIGNING_SECRETS=whsec_... CHARGEWIRE_API_TOKEN=cw_... PORT=3000 java ... ReceiverExample</pre>
 */
public final class ReceiverExample {
  private ReceiverExample() {}

  /** The servlet behind the filter: only verified, parsed events reach it. */
  static final class HooksServlet extends HttpServlet {
    private static final ObjectMapper JSON = new ObjectMapper();
    private final String recordFile;

    HooksServlet(String recordFile) {
      this.recordFile = recordFile;
    }

    @Override
    protected void doPost(HttpServletRequest request, HttpServletResponse response) throws IOException {
      ChargewireEvent event = (ChargewireEvent) request.getAttribute(ChargewireWebhookFilter.EVENT_ATTRIBUTE);
      if (event instanceof Events.SessionStartStopNotification session) {
        System.out.println("session " + session.sessionId() + " stopped at meter " + session.meterStop());
      }
      record(event, request.getHeader("webhook-id"));
      response.setStatus(204); // answer fast; slow work belongs in a queue after this
    }

    private synchronized void record(ChargewireEvent event, String webhookId) throws IOException {
      if (recordFile == null) {
        return;
      }
      Map<String, String> line = Map.of(
          "notification", event.notification(), "type", event.getClass().getSimpleName(), "webhookId", webhookId);
      Files.writeString(Path.of(recordFile), JSON.writeValueAsString(line) + "\n", StandardCharsets.UTF_8,
          StandardOpenOption.CREATE, StandardOpenOption.APPEND);
    }
  }

  /** Answers 200 once the server runs. */
  static final class HealthServlet extends HttpServlet {
    @Override
    protected void doGet(HttpServletRequest request, HttpServletResponse response) {
      response.setStatus(200);
    }
  }

  public static void main(String[] args) throws Exception {
    String secrets = System.getenv().getOrDefault("CHARGEWIRE_SIGNING_SECRETS", "");
    List<String> secretList = Arrays.stream(secrets.trim().split("\\s+")).filter(s -> !s.isEmpty()).toList();
    Verifier verifier = new Verifier(secretList, System.getenv("CHARGEWIRE_API_TOKEN"));
    int port = Integer.parseInt(System.getenv().getOrDefault("PORT", "3000"));

    ServletContextHandler context = new ServletContextHandler();
    context.addFilter(
        new FilterHolder(new ChargewireWebhookFilter(verifier)), "/hooks", EnumSet.of(DispatcherType.REQUEST));
    context.addServlet(new ServletHolder(new HooksServlet(System.getenv("RECEIVER_RECORD_FILE"))), "/hooks");
    context.addServlet(new ServletHolder(new HealthServlet()), "/health");
    Server server = new Server(new InetSocketAddress("127.0.0.1", port));
    server.setHandler(context);
    server.start();
    System.out.println("listening on http://127.0.0.1:" + port + "/hooks");
    server.join();
  }
}
