"""A subscriber's keys held together: verify a delivery and parse it in one call."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from chargewire.receiver.event import Event, parse_event
from chargewire.receiver.verify import DEFAULT_TOLERANCE_S, verify_notification


@dataclass(frozen=True)
class Verifier:
    """The signing secrets (several during a rotation) and/or the API token of one subscription."""

    signing_secrets: Sequence[str] = field(default_factory=tuple)
    api_token: str | None = None
    tolerance_s: float = DEFAULT_TOLERANCE_S

    def __post_init__(self) -> None:
        if isinstance(self.signing_secrets, str):
            object.__setattr__(self, "signing_secrets", (self.signing_secrets,))
        if not self.signing_secrets and self.api_token is None:
            raise ValueError("give the subscription's signing secret(s), its API token, or both")

    def verify(self, body: bytes, headers: Mapping[str, str], now: float | None = None) -> None:
        """Check every signature for which a key is held; `InvalidSignature` says why one fails."""
        verify_notification(
            body,
            headers,
            signing_secret=self.signing_secrets or None,
            api_token=self.api_token,
            tolerance_s=self.tolerance_s,
            now=now,
        )

    def verify_event(self, body: bytes, headers: Mapping[str, str], now: float | None = None) -> Event:
        """Verify, then parse into the typed payload of its name."""
        self.verify(body, headers, now)
        return parse_event(body)
