"""A test-only channel, "memory", added the way docs/channels.md describes: this package plus its registration.

Its target names a mailbox (`{"via": "memory", "memory": {"mailbox": "fleet"}}`) and may carry a secret
`passphrase` (stored encrypted, never shown, kept by a replace that sends none); its sender keeps every message
it is handed in that mailbox, in process, and notes the passphrase it read. Nothing outside this package knows
about it.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
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

# What every MemoryChannel was handed, by mailbox, and the passphrase it read for each: the tests read them.
MAILBOXES: dict[str, list[OutboundMessage]] = defaultdict(list)
PASSPHRASES: dict[str, list[str | None]] = defaultdict(list)


class MemoryChannel:
    """Delivers by keeping the message in its subscription's mailbox."""

    def __init__(self, secrets_for: Callable[[str], Awaitable[Any]]) -> None:
        self._secrets_for = secrets_for

    async def send(self, message: OutboundMessage) -> AttemptResult:
        """Keep the message and note the subscription's passphrase; always succeeds."""
        mailbox = str((message.subscription.target or {})["mailbox"])
        secrets = await self._secrets_for(message.subscription.id) or {}
        MAILBOXES[mailbox].append(message)
        PASSPHRASES[mailbox].append(secrets.get("passphrase"))
        return AttemptResult(started_at=utcnow(), duration_ms=0.0, status_code=None)

    async def aclose(self) -> None:
        """Nothing to release."""


def _parse(value: object, stored: object, errors: FieldErrors) -> ParsedTarget | None:
    if not isinstance(value, Mapping):
        errors.add(NAME, "The memory object is required when via is memory.")
        return None
    mailbox = value.get("mailbox")
    if not isinstance(mailbox, str) or not _MAILBOX.match(mailbox):
        errors.add(f"{NAME}.mailbox", "A mailbox is 1 to 40 of a-z, 0-9 and '-'.")
        return None
    passphrase = value.get("passphrase")
    if passphrase is not None and not isinstance(passphrase, str):
        errors.add(f"{NAME}.passphrase", "A passphrase is a string.")
        return None
    # A replace that sends no passphrase keeps the stored one, as responses never show it.
    passphrase = passphrase or (stored.get("passphrase") if isinstance(stored, Mapping) else None)
    return ParsedTarget({"target": {"mailbox": mailbox}}, {"passphrase": passphrase} if passphrase else None)


def _render(subscription: Subscription) -> dict[str, Any] | None:
    return dict(subscription.target) if subscription.target is not None else None


def _client(context: ChannelContext) -> Channel:
    return MemoryChannel(context.secrets_for)


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
    section_schema={
        "type": "object",
        "properties": {
            "mailbox": {"type": "string", "pattern": _MAILBOX.pattern},
            "passphrase": {"type": "string", "writeOnly": True, "description": "Stored encrypted; never shown"},
        },
        "required": ["mailbox"],
    },
)


def register() -> None:
    """Make the memory channel known to chargewire."""
    register_channel(MEMORY)
