"""For subscribers: verify chargewire's signatures; a sample receiver that does so."""

from chargewire.receiver.sample import ReceiverStats, SampleReceiver
from chargewire.receiver.verify import (
    InvalidSignature,
    verify_notification,
    verify_webhook_signature,
    verify_x_signature,
)

__all__ = [
    "InvalidSignature",
    "ReceiverStats",
    "SampleReceiver",
    "verify_notification",
    "verify_webhook_signature",
    "verify_x_signature",
]
