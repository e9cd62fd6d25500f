"""The channel registry: each way of delivering describes itself once, and generic code asks the registry.

A channel's package builds one `ChannelType` and passes it to `register_channel`; from then on the
subscription body parser, the Notifications API's responses, the address guard at subscribe time, the back
office's form, the runtime's senders and the dispatcher's per-subscription limits all find it by its `via`
name. Webhook (`chargewire.channels.webhook_type`) and Kafka (`chargewire.kafka.channel_type`) are registered
the first time the registry is read; `docs/channels.md` walks through adding a third.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from chargewire.errors import ChargewireError, ValidationFailed
from chargewire.models import Subscription

if TYPE_CHECKING:
    from prometheus_client.registry import Collector

    from chargewire.channels.base import Channel
    from chargewire.config import Settings

# Imported (and so registered) the first time the registry is read; they come first, in this order, wherever
# channels are listed (the form's choices, the "must be one of" message).
_BUILT_IN = {"webhook": "chargewire.channels.webhook_type", "kafka": "chargewire.kafka.channel_type"}


class UnknownChannel(ChargewireError):
    """No channel is registered under that name."""


class FieldErrors:
    """Collects messages by field path, so one 422 reports every problem of a body."""

    def __init__(self) -> None:
        self.by_field: dict[str, list[str]] = {}

    def add(self, where: str, message: str) -> None:
        """File `message` under the field path `where` (`kafka.brokers.0`)."""
        self.by_field.setdefault(where, []).append(message)

    def raise_if_any(self) -> None:
        """Raise ValidationFailed with every message collected, if there is one."""
        if self.by_field:
            raise ValidationFailed(self.by_field)


@dataclass(frozen=True, slots=True)
class ParsedTarget:
    """A checked body section: the `Subscription` fields it sets, and its secret half (stored encrypted).

    The secret half is whatever the channel's `dump_secrets` turns into a JSON document and `load_secrets`
    turns back (a plain JSON document unless the channel says otherwise).
    """

    fields: Mapping[str, Any]
    secrets: Any = None


@dataclass(frozen=True, slots=True)
class ChannelContext:
    """What a channel's client may be built from: the settings, and a lookup of a subscription's secrets."""

    settings: Settings
    secrets_for: Callable[[str], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class FormSection:
    """A channel's part of the back office's subscription form.

    `fields` are the form field names (named as the API's error paths, `kafka.topic`), in page order;
    `template` is the Jinja source of the fieldset that shows them, rendered with the form's context.
    """

    fields: tuple[str, ...]
    template: str
    body: Callable[[Mapping[str, Sequence[str]]], dict[str, Any]]
    values: Callable[[Subscription], dict[str, Any]]
    defaults: Mapping[str, str] = field(default_factory=dict)
    secret_fields: tuple[str, ...] = ()
    choices: Mapping[str, Sequence[str]] = field(default_factory=dict)
    indexed_labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PageParts:
    """How the back office's pages show a channel's target.

    `target` is the Jinja source of the target as one line of a page (given `subscription`), `facts` the
    source of any extra `<dt>`/`<dd>` rows on a subscription's page; `name` is the target in a few words of
    plain text (a URL, a topic), where a page names a subscription that has no description.
    """

    target: str
    name: Callable[[Subscription], str]
    facts: str = ""


@dataclass(frozen=True, slots=True)
class ChannelType:
    """Everything chargewire needs to know about one way of delivering, keyed by its `via` name.

    `name` is also the key of the body section that holds the target (`{"via": "kafka", "kafka": {...}}`);
    `title` names the channel in a sentence ("New Kafka subscription"), `label` describes it as a choice.
    `parse` checks that section (`stored` is the secret half kept from the subscription being replaced) and
    files errors under `name.field`; `render` is the section as API responses show it; `target_hosts` lists
    the (field, host) pairs the address guard checks at subscribe time; `client` builds the sender the
    dispatcher hands this channel's deliveries to; `max_in_flight` caps one subscription's attempts at a time;
    `retry_floor_s` is the shortest wait before a retry; `keeps_order` holds back a subscription's later
    deliveries while an earlier one waits for its retry; `form` and `pages` are its part of the back office;
    `collectors` are the channel's own figures for `/metrics`; `dump_secrets` turns the secret half of a
    `ParsedTarget` into the JSON document stored encrypted (None when there is nothing to keep) and
    `load_secrets` turns that document back into what `parse` (as `stored`) and `client` receive;
    `section_schema` is the JSON Schema of its body section, which `/openapi.json` shows for a channel the
    API's models have no field for (mark secret fields `writeOnly`).
    """

    name: str
    title: str
    label: str
    parse: Callable[[object, Any, FieldErrors], ParsedTarget | None]
    render: Callable[[Subscription], dict[str, Any] | None]
    client: Callable[[ChannelContext], Channel]
    max_in_flight: Callable[[Settings], int]
    form: FormSection
    pages: PageParts
    target_hosts: Callable[[Mapping[str, Any]], list[tuple[str, str]]] = lambda _section: []
    retry_floor_s: Callable[[Settings], float] = lambda _settings: 0.0
    keeps_order: bool = False
    collectors: Callable[[], Sequence[Collector]] = lambda: ()
    dump_secrets: Callable[[Any], Mapping[str, Any] | None] = lambda secrets: secrets or None
    load_secrets: Callable[[Mapping[str, Any]], Any] = dict
    section_schema: Mapping[str, Any] | None = None


_registered: dict[str, ChannelType] = {}


def first_value(form: Mapping[str, Sequence[str]], name: str) -> str:
    """The first value a form submitted for a field, or an empty string."""
    values = form.get(name, ())
    return values[0] if values else ""


def register_channel(channel: ChannelType) -> None:
    """Make `channel` known by its name; registering a name again replaces its description."""
    _registered[channel.name] = channel


def unregister_channel(name: str) -> None:
    """Forget a registered channel (tests that register their own)."""
    _registered.pop(name, None)


def channel_types() -> tuple[ChannelType, ...]:
    """Every registered channel, the built-in ones first."""
    for module in _BUILT_IN.values():
        importlib.import_module(module)
    built_in = tuple(_registered[name] for name in _BUILT_IN)
    return built_in + tuple(channel for name, channel in _registered.items() if name not in _BUILT_IN)


def channel_names() -> tuple[str, ...]:
    """The `via` names of every registered channel."""
    return tuple(channel.name for channel in channel_types())


def channel_type(name: str) -> ChannelType:
    """The channel registered as `name`; UnknownChannel if there is none."""
    if name not in _registered:
        channel_types()
    try:
        return _registered[name]
    except KeyError:
        raise UnknownChannel(f"No channel is registered as {name!r}.") from None
