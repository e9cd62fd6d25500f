"""Dispatch: the delivery loop and the pure retry policy it consults."""

from chargewire.dispatch.retry_policy import (
    DEFAULT_RETRY_AFTER_CAP_S,
    KAFKA_RETRY_MARGIN_S,
    SLOW_DOWN_ERROR_CLASSES,
    SLOW_DOWN_FLOOR_S,
    kafka_retry_floor_s,
    next_attempt_delay,
)

__all__ = [
    "DEFAULT_RETRY_AFTER_CAP_S",
    "KAFKA_RETRY_MARGIN_S",
    "SLOW_DOWN_ERROR_CLASSES",
    "SLOW_DOWN_FLOOR_S",
    "kafka_retry_floor_s",
    "next_attempt_delay",
]
