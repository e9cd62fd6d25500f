"""The `chargewire` command line, run as a subprocess."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from chargewire.catalog import load_event_types
from chargewire.store.database import create_database
from chargewire.store.retention import ExpiryRun, RetentionStore
from tests.support.processes import CHARGEWIRE, cli, in_process


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
def test_token_lifecycle_create_list_revoke(cli_env: dict[str, str]) -> None:
    cli(cli_env, "db", "upgrade")
    created = json.loads(
        cli(
            cli_env, "tokens", "create", "--name", "ci", "--scope", "events:publish", "--scope", "admin", "--json"
        ).stdout
    )
    assert set(created) == {"id", "token", "scopes"}
    assert created["scopes"] == ["events:publish", "admin"]
    listed = json.loads(cli(cli_env, "tokens", "list", "--json").stdout)
    assert [token["id"] for token in listed] == [created["id"]]
    assert created["token"] not in json.dumps(listed)
    cli(cli_env, "tokens", "revoke", created["id"])
    assert [token.id for token in in_process(cli_env, lambda runtime: runtime.tokens.list())] == []


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
def test_db_stats_prints_every_history_table_and_the_last_expiry_run(migrated_env: dict[str, str]) -> None:
    assert "last expiry run: none yet" in cli(migrated_env, "db", "stats").stdout
    started = datetime(2026, 12, 5, 3, 0, tzinfo=UTC)
    run = ExpiryRun(started, started + timedelta(seconds=2), {"events": 12, "deliveries": 24}, None, [])

    async def record() -> None:
        database = create_database(migrated_env["CHARGEWIRE_DATABASE_URL"])
        try:
            await RetentionStore(database).record_run(run)
        finally:
            await database.aclose()

    asyncio.run(record())
    printed = cli(migrated_env, "db", "stats").stdout

    tables = {line.split()[0] for line in printed.splitlines()[1:] if line.strip() and not line.startswith("last")}
    assert {"events", "deliveries", "attempts", "attempt_batches"} <= tables
    assert "last expiry run: 2026-12-05T03:00:00+00:00 (2.0 s), removed 12 events, 24 deliveries; ok" in printed


def test_unknown_scope_is_refused_naming_it(migrated_env: dict[str, str]) -> None:
    result = cli(migrated_env, "tokens", "create", "--name", "x", "--scope", "everything", check=False)
    assert result.returncode == 1
    assert "Unknown scope 'everything'" in result.stderr


def test_events_list_json_has_every_event() -> None:
    listed = json.loads(cli({}, "events", "list", "--json").stdout)
    assert [item["name"] for item in listed] == list(load_event_types())
    assert all({"deprecated", "successors", "schema", "example"} <= set(item) for item in listed)


def test_events_validate_names_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"notification": "HardwareStatusNotification", "chargePointId": "x"}))
    result = cli({}, "events", "validate", str(bad), check=False)
    assert result.returncode == 1
    assert "[0] chargePointId: Must be of type integer" in result.stderr


def test_service_refuses_to_start_without_a_secret_key(cli_env: dict[str, str]) -> None:
    without_key = {name: value for name, value in cli_env.items() if name != "CHARGEWIRE_SECRET_KEY"}
    result = cli(without_key, "tokens", "list", check=False)
    assert result.returncode == 1
    assert "CHARGEWIRE_SECRET_KEY is not set" in result.stderr


def test_dev_kafka_starts_a_broker_and_prints_how_to_reach_it() -> None:
    command = [CHARGEWIRE, "dev", "kafka"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as process:
        try:
            lines: list[str] = []
            deadline = time.monotonic() + 120
            assert process.stdout is not None
            while time.monotonic() < deadline and not any("Ctrl-C" in line for line in lines):
                lines.append(process.stdout.readline())
            printed = "".join(lines)
            assert "SASL_SSL" in printed
            assert "SCRAM-SHA-512" in printed
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(60)
