"""A tap's name among those sharing the database: set by `ocpp_tap_name`, else its host and listening address."""

from __future__ import annotations

import socket

from chargewire.config import Settings
from chargewire.sources.ocpp.tap import tap_name


def test_the_tap_name_setting_names_the_tap_when_set() -> None:
    settings = Settings(database_url="sqlite://", ocpp_listen="0.0.0.0:9000", ocpp_tap_name="tap-east")

    assert tap_name(settings) == "tap-east"


def test_a_tap_without_a_name_is_named_by_its_host_and_listening_address() -> None:
    settings = Settings(database_url="sqlite://", ocpp_listen="0.0.0.0:9000")

    assert tap_name(settings) == f"{socket.gethostname()} 0.0.0.0:9000"
