"""A test-only channel, "memory", added the way docs/channels.md describes: this package plus its registration.

Its target names a mailbox (`{"via": "memory", "memory": {"mailbox": "fleet"}}`); its sender keeps every
message it is handed in that mailbox, in process. Nothing outside this package knows about it.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from chargewire.channels.base import AttemptResult, Channel, OutboundMessage
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
from chargewire.clock import utcnow
from chargewire.config import Settings
from chargewire.models import Subscription

NAME = "memory"
_MAILBOX = re.compile(r"^[a-z0-9-]{1,40}$")

# What every MemoryChannel was handed, by mailbox: the test reads it.
MAILBOXES: dict[str, list[OutboundMessage]] = defaultdict(list)


class MemoryChannel:
    """Delivers by keeping the message in its subscription's mailbox."""

    async def send(self, message: OutboundMessage) -> AttemptResult:
        """Keep the message; always succeeds."""
        target = message.subscription.target or {}
        MAILBOXES[str(target["mailbox"])].append(message)
        return AttemptResult(started_at=utcnow(), duration_ms=0.0, status_code=None)

    async def aclose(self) -> None:
        """Nothing to release."""


def _parse(value: object, _stored: object, errors: FieldErrors) -> ParsedTarget | None:
    if not isinstance(value, Mapping):
        errors.add(NAME, "The memory object is required when via is memory.")
        return None
    mailbox = value.get("mailbox")
    if not isinstance(mailbox, str) or not _MAILBOX.match(mailbox):
        errors.add(f"{NAME}.mailbox", "A mailbox is 1 to 40 of a-z, 0-9 and '-'.")
        return None
    return ParsedTarget({"target": {"mailbox": mailbox}})


def _render(subscription: Subscription) -> dict[str, Any] | None:
    return dict(subscription.target) if subscription.target is not None else None


def _client(_context: ChannelContext) -> Channel:
    return MemoryChannel()


def _max_in_flight(_settings: Settings) -> int:
    return 1


def _form_body(form: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    return {"mailbox": first_value(form, "memory.mailbox").strip()}


def _mailbox(subscription: Subscription) -> str:
    return str((subscription.target or {}).get("mailbox", ""))


def _form_values(subscription: Subscription) -> dict[str, Any]:
    return {"memory.mailbox": _mailbox(subscription)}


MEMORY = ChannelType(
    name=NAME,
    title="memory",
    label="Memory (kept in this process)",
    parse=_parse,
    render=_render,
    client=_client,
    max_in_flight=_max_in_flight,
    form=FormSection(
        fields=("memory.mailbox",),
        template=(Path(__file__).parent / "form.html").read_text(),
        body=_form_body,
        values=_form_values,
    ),
    pages=PageParts(target='mailbox <span class="mono">{{ subscription.target.mailbox }}</span>', name=_mailbox),
)


def register() -> None:
    """Make the memory channel known to chargewire."""
    register_channel(MEMORY)
