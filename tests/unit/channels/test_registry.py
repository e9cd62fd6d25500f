"""The channel registry: the built-in channels come first, a registered one joins them, an unknown name is refused."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chargewire.channels.registry import UnknownChannel, channel_names, channel_type, unregister_channel
from tests.support import memory_channel


@pytest.fixture
def memory() -> Iterator[None]:
    """The memory channel, registered for one test."""
    memory_channel.register()
    yield
    unregister_channel(memory_channel.NAME)


def test_the_built_in_channels_are_known_without_registering_them() -> None:
    assert channel_names() == ("webhook", "kafka")


def test_a_registered_channel_is_listed_after_the_built_in_ones(memory: None) -> None:
    assert channel_names() == ("webhook", "kafka", "memory")
    assert channel_type("memory") is memory_channel.MEMORY


def test_an_unregistered_channel_name_is_refused_by_name() -> None:
    with pytest.raises(UnknownChannel, match="'sms'"):
        channel_type("sms")
