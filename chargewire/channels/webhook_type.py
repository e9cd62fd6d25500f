"""The webhook channel's description: a `webhook.callbackUrl` target, posted to by `WebhookChannel`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from importlib.resources import files
from typing import Any
from urllib.parse import urlsplit

from chargewire.channels.base import Channel
from chargewire.channels.registry import (
    ChannelContext,
    ChannelType,
    FieldErrors,
    FormSection,
    PageParts,
    ParsedTarget,
    first_value,
    register_channel,
)
from chargewire.config import Settings
from chargewire.models import Subscription
from chargewire.storable import storable

MAX_CALLBACK_URL_LENGTH = 500


def check_callback_url_syntax(url: object) -> str | None:
    """What is wrong with a callback URL's form (scheme, host, length), or None when it is well formed."""
    if url is None or url == "":
        return "The callback url field is required."
    if not isinstance(url, str) or not storable(url):
        return "The callback url must be a string of printable characters."
    if len(url) > MAX_CALLBACK_URL_LENGTH:
        return f"The callback url may not be greater than {MAX_CALLBACK_URL_LENGTH} characters."
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError for a port out of range)
    except ValueError:
        return "The callback url must be a valid URL."
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "The callback url must be an http or https URL with a host."
    if any(ch.isspace() for ch in url):
        return "The callback url must not contain white space."
    return None


def parse_webhook(value: object, _stored: object, errors: FieldErrors) -> ParsedTarget | None:
    """The `webhook` section of a body: a well-formed callback URL."""
    if not isinstance(value, Mapping):
        errors.add("webhook", "The webhook object is required when via is webhook.")
        return None
    url = value.get("callbackUrl")
    message = check_callback_url_syntax(url)
    if message:
        errors.add("webhook.callbackUrl", message)
        return None
    return ParsedTarget({"callback_url": str(url)})


def webhook_hosts(section: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The callback URL's host, for the address guard, when it can be read."""
    url = section.get("callbackUrl")
    try:
        host = urlsplit(url).hostname if isinstance(url, str) else None
    except ValueError:
        return []
    return [("webhook.callbackUrl", host)] if host else []


def _render(subscription: Subscription) -> dict[str, Any]:
    return {"callbackUrl": subscription.callback_url}


def _client(context: ChannelContext) -> Channel:
    # The HTTP client loads with the first client: describing, checking and storing a target needs none.
    from chargewire.channels.webhook import WebhookChannel

    return WebhookChannel(context.settings)


def _max_in_flight(settings: Settings) -> int:
    return settings.worker_max_in_flight_per_subscription


def _form_body(form: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    return {"callbackUrl": first_value(form, "webhook.callbackUrl").strip()}


def _form_values(subscription: Subscription) -> dict[str, Any]:
    return {"webhook.callbackUrl": subscription.callback_url} if subscription.callback_url is not None else {}


def _name(subscription: Subscription) -> str:
    return subscription.callback_url or ""


WEBHOOK = ChannelType(
    name="webhook",
    title="webhook",
    label="Webhook (signed HTTP POST)",
    parse=parse_webhook,
    render=_render,
    client=_client,
    max_in_flight=_max_in_flight,
    target_hosts=webhook_hosts,
    form=FormSection(
        fields=("webhook.callbackUrl",),
        template=files("chargewire.channels").joinpath("templates/webhook.html").read_text(),
        body=_form_body,
        values=_form_values,
    ),
    pages=PageParts(
        target='<span class="mono clip" title="{{ subscription.callback_url }}">{{ subscription.callback_url }}</span>',
        name=_name,
    ),
)
register_channel(WEBHOOK)
