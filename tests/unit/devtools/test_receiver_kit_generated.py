"""The receiver kit's generated files (vectors, typed payloads per language) match the catalog and signing code."""

from __future__ import annotations

from chargewire.devtools.receiver_kit.generate import stale


def test_generated_receiver_files_are_current_when_checked_in() -> None:
    assert stale() == [], "run scripts/generate-receiver-kit and commit the result"
