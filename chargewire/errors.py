"""The error tree. Each class's docstring is its default message.

ChargewireError
├── ConfigurationError          settings missing or inconsistent; the service refuses to start
│   └── SecretUndecryptable     a stored secret does not decrypt under CHARGEWIRE_SECRET_KEY
├── ValidationFailed            input rejected; carries {field path: [messages]}
│   └── UnknownEventType        a `notification` name not in the catalog
├── NotFound                    no such record (or not visible to the caller)
├── Unauthenticated             token missing, unknown or revoked
├── PermissionDenied            token lacks the scope or does not own the record
├── Conflict                    the action is not allowed in the record's current state
│   └── IdempotencyKeyTaken     another publish stored this Idempotency-Key first (read its result instead)
├── RateLimited                 too many requests for this token
├── DatabaseUnavailable         the database is locked, down or full for now: answered 503, retried by workers
├── TaskFailed                  a long-running task failed in a way retrying cannot clear; the process ends
└── DeliveryError               one attempt to deliver failed
    ├── RetryableDeliveryError  worth trying again: timeout, connection, 5xx, 429, broker down
    └── PermanentDeliveryError  will fail the same way again: 4xx, blocked address, rejected record

Retry decisions read the type, never the message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


class ChargewireError(Exception):
    """Something went wrong in chargewire."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())

    @property
    def message(self) -> str:
        """The human-readable message."""
        return str(self.args[0])


class ConfigurationError(ChargewireError):
    """The configuration is incomplete or inconsistent."""


class SecretUndecryptable(ConfigurationError):
    """CHARGEWIRE_SECRET_KEY does not decrypt the stored secrets: it differs from the key they were written with."""

    def as_delivery_error(self) -> RetryableDeliveryError:
        """The error a delivery fails with when its subscription's secrets do not decrypt (`secret_undecryptable`).

        Retryable: the operator fixes it by running the service with the right key, and the next retry delivers.
        """
        message = f"The subscription's stored secrets cannot be used: {self.message}"
        return RetryableDeliveryError(message, error_class="secret_undecryptable")


class ValidationFailed(ChargewireError):
    """The given data was invalid."""

    def __init__(self, errors: Mapping[str, Sequence[str]], message: str | None = None) -> None:
        self.errors: dict[str, list[str]] = {field: list(msgs) for field, msgs in errors.items()}
        super().__init__(message or _summary(self.errors))


class UnknownEventType(ValidationFailed):
    """The event type is not in the catalog."""


class NotFound(ChargewireError):
    """Not found."""


class Unauthenticated(ChargewireError):
    """Unauthenticated."""


class PermissionDenied(ChargewireError):
    """This action is unauthorized."""


class Conflict(ChargewireError):
    """The request conflicts with the current state of the resource."""


class IdempotencyKeyTaken(Conflict):
    """Another request with this Idempotency-Key was stored first."""


class RateLimited(ChargewireError):
    """Too Many Attempts."""

    def __init__(self, limit: int, retry_after_s: int, message: str | None = None) -> None:
        self.limit = limit
        self.retry_after_s = retry_after_s
        super().__init__(message)


class DatabaseUnavailable(ChargewireError):
    """The database is unavailable right now; try again shortly."""

    retry_after_s = 2  # what a client told so should wait before trying again


class TaskFailed(ChargewireError):
    """A long-running task failed in a way that retrying cannot clear."""


class DeliveryError(ChargewireError):
    """The delivery attempt failed."""

    error_class: str = "error"

    def __init__(self, message: str | None = None, *, error_class: str | None = None) -> None:
        super().__init__(message)
        if error_class is not None:
            self.error_class = error_class


class RetryableDeliveryError(DeliveryError):
    """The delivery attempt failed and may succeed later."""

    def __init__(
        self,
        message: str | None = None,
        *,
        error_class: str | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message, error_class=error_class)
        self.retry_after_s = retry_after_s


class PermanentDeliveryError(DeliveryError):
    """The delivery attempt failed and would fail the same way again."""


def _summary(errors: Mapping[str, Sequence[str]]) -> str:
    messages = [msg for msgs in errors.values() for msg in msgs]
    if not messages:
        return "The given data was invalid."
    more = len(messages) - 1
    return messages[0] + (f" (and {more} more error{'s' if more > 1 else ''})" if more else "")
