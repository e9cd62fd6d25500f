"""Subscribers can import the receiver kit without loading the service's stack."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("fastapi", "sqlalchemy", "aiohttp", "httpx", "confluent_kafka", "starlette", "pydantic")


def _imported_modules(statement: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", statement], capture_output=True, text=True, check=True
    )
    # importtime writes one line per module to stderr: "import time: self | cumulative | name".
    rows = [line.split("|")[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")]
    return set(rows)


def test_importing_the_receiver_loads_none_of_the_services_stack() -> None:
    modules = _imported_modules("import chargewire.receiver")
    assert "chargewire.receiver" in modules
    assert not {m for m in modules if m.split(".")[0] in HEAVY}


def test_the_package_root_still_offers_publish_on_demand() -> None:
    modules = _imported_modules("import chargewire; assert callable(chargewire.publish)")
    assert "chargewire.publishing" in modules
