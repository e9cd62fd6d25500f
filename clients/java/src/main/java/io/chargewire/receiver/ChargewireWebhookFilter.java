package io.chargewire.receiver;

import jakarta.servlet.Filter;
import jakarta.servlet.FilterChain;
import jakarta.servlet.ServletException;
import jakarta.servlet.ServletRequest;
import jakarta.servlet.ServletResponse;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;
import java.io.IOException;
import java.util.Optional;

/**
 * A Jakarta servlet filter that verifies and parses each request before the servlet runs; the servlet
 * finds the event in the request attribute {@link #EVENT_ATTRIBUTE}. A bad signature gets 401 with the
 * reason, a body that is no event 400. Works in any Servlet 6 container and in Spring Boot 3.
 */
public final class ChargewireWebhookFilter implements Filter {
  public static final String EVENT_ATTRIBUTE = "chargewire.event";
  public static final int MAX_BODY_BYTES = 5 * 1024 * 1024;

  private final Verifier verifier;

  public ChargewireWebhookFilter(Verifier verifier) {
    this.verifier = verifier;
  }

  @Override
  public void doFilter(ServletRequest request, ServletResponse response, FilterChain chain)
      throws IOException, ServletException {
    HttpServletRequest http = (HttpServletRequest) request;
    HttpServletResponse answer = (HttpServletResponse) response;
    byte[] body = http.getInputStream().readNBytes(MAX_BODY_BYTES + 1);
    if (body.length > MAX_BODY_BYTES) {
      answer.sendError(413);
      return;
    }
    try {
      http.setAttribute(EVENT_ATTRIBUTE, verifier.verifyEvent(body, name -> Optional.ofNullable(http.getHeader(name))));
    } catch (WebhookVerificationException refused) {
      answer.sendError(401, refused.reason().code());
      return;
    } catch (MalformedEventException malformed) {
      answer.sendError(400, malformed.getMessage());
      return;
    }
    chain.doFilter(request, response);
  }
}
