"""The package root and the receiver kit import without loading a database, HTTP or Kafka client."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# Top-level packages of the service's clients: databases and their drivers, HTTP clients, Kafka.
CLIENTS = frozenset(
    {"sqlalchemy", "asyncpg", "aiosqlite", "sqlite3", "_sqlite3", "psycopg", "httpx", "aiohttp", "confluent_kafka"}
)


def _clients_loaded_by(statement: str) -> set[str]:
    script = f"{statement}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return {name for name in json.loads(done.stdout) if name.split(".")[0] in CLIENTS}


@pytest.mark.parametrize("statement", ["import chargewire", "import chargewire.receiver", "import chargewire.version"])
def test_importing_the_package_root_or_receiver_loads_no_database_http_or_kafka_client(statement: str) -> None:
    assert _clients_loaded_by(statement) == set()
