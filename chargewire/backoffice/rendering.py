"""Pages from Jinja2 templates, with the filters they share and the security headers every page carries."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from jinja2 import (
    ChoiceLoader,
    Environment,
    FunctionLoader,
    PackageLoader,
    StrictUndefined,
    Template,
    select_autoescape,
)
from markupsafe import Markup, escape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from chargewire.backoffice.session import SCOPE_KEY, Session
from chargewire.channels.registry import channel_names, channel_type
from chargewire.clock import utcnow
from chargewire.models import Subscription
from chargewire.services.overview import health_state

PREFIX = "/backoffice"
_CHANNEL_PART = re.compile(r"channels/(?P<name>[^/]+)/(?P<part>form|target|facts)\.html")

# Scripts and styles come only from our own static files: an injected <script> would not run.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def channel_part(name: str) -> str | None:
    """The source of `channels/<via>/{form,target,facts}.html`, from that channel's description.

    `form` is its fieldset of the subscription form; `target` and `facts` show its target on pages.
    """
    match = _CHANNEL_PART.fullmatch(name)
    if match is None or match["name"] not in channel_names():
        return None
    channel = channel_type(match["name"])
    parts = {"form": channel.form.template, "target": channel.pages.target, "facts": channel.pages.facts}
    return parts[match["part"]]


def target_name(subscription: Subscription) -> str:
    """A subscription's target in a few words (its URL, its topic), from its channel's description."""
    return channel_type(str(subscription.via)).pages.name(subscription)


def when(moment: datetime | None) -> str:
    """A time as `2026-11-26 09:15:30 UTC`."""
    if moment is None:
        return "—"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def ago(moment: datetime | None, now: datetime | None = None) -> str:
    """How long ago a time was, roughly: `just now`, `4 min ago`, `3 h ago`, `2 d ago`."""
    if moment is None:
        return "never"
    seconds = ((now or datetime.now(UTC)) - moment).total_seconds()
    if seconds < 0:
        return "in " + ago(now or datetime.now(UTC), moment).removesuffix(" ago")
    if seconds < 45:
        return "just now"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return "just now"


def iso(moment: datetime | None) -> str:
    """A time in ISO 8601 (for `<time datetime>`)."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z") if moment else ""


def pretty_json(value: Any) -> str:
    """Indented JSON for a <pre> block."""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False)


def pretty_body(text: str | bytes | None) -> str:
    """A request or response body: indented when it is JSON, as it came otherwise."""
    if text is None:
        return ""
    raw = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    try:
        return pretty_json(json.loads(raw))
    except ValueError:
        return raw


_WORD_START = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=\.)")


def word_breaks(name: str) -> Markup:
    """An identifier with line-break opportunities between its words (`ChargePoint<wbr>Changed`), never inside one."""
    return Markup("<wbr>").join(escape(part) for part in _WORD_START.split(name))


def field_id(name: str) -> str:
    """The HTML id of a form field named like an API field (`kafka.brokers` -> `f-kafka-brokers`)."""
    return "f-" + name.replace(".", "-").replace("_", "-")


def _environment() -> Environment:
    environment = Environment(
        loader=ChoiceLoader([PackageLoader("chargewire.backoffice", "templates"), FunctionLoader(channel_part)]),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(
        when=when,
        ago=ago,
        iso=iso,
        pretty_json=pretty_json,
        pretty_body=pretty_body,
        field_id=field_id,
        word_breaks=word_breaks,
        target_name=target_name,
    )
    environment.globals["prefix"] = PREFIX
    environment.globals["health_state"] = lambda health: health_state(health, utcnow())
    return environment


_ENVIRONMENT = _environment()


def page_template(name: str) -> Template:
    """A page template, with the filters and globals every page uses."""
    return _ENVIRONMENT.get_template(name)


def session_of(request: Request) -> Session:
    """The session the middleware loaded for this request."""
    session: Session | None = request.scope.get(SCOPE_KEY)
    if session is None:  # an error page for a request that failed before the session middleware
        session = request.scope[SCOPE_KEY] = Session()
    return session


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A page: the template with the signed-in user, CSRF token, waiting messages and navigation."""
    session = session_of(request)
    page = page_template(template).render(
        request=request,
        user=getattr(request.state, "user", None),
        csrf_token=session.csrf_token,
        flashes=session.pop_flashes(),
        path=request.url.path,
        **context,
    )
    return HTMLResponse(page, status_code=status_code, headers=SECURITY_HEADERS)
