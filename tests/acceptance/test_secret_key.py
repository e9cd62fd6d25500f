"""Where the CLI and `serve` find the secret key, and how they refuse one that cannot read the stored secrets."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from chargewire.devtools.postgres import free_port
from tests.support.processes import CHARGEWIRE, cli, running_server

OTHER_KEY = "another-secret-key-that-wrote-nothing-here-0123"


@pytest.fixture
def embedded_env(tmp_path: Path) -> dict[str, str]:
    """The embedded SQLite default in a fresh data folder, with no key configured."""
    return {
        "CHARGEWIRE_DATA_DIR": str(tmp_path / "data"),
        "CHARGEWIRE_CONFIG": str(tmp_path / "absent.toml"),
        "CHARGEWIRE_DATABASE_URL": "",
    }


def _without_key(env: dict[str, str]) -> dict[str, str]:
    return {name: value for name, value in env.items() if name != "CHARGEWIRE_SECRET_KEY"}


def test_cli_and_serve_share_one_key_file_made_on_first_use_when_no_key_is_set(
    embedded_env: dict[str, str], tmp_path: Path
) -> None:
    env = embedded_env
    key_file = tmp_path / "data" / "secret.key"
    first = cli(env, "tokens", "create", "--name", "ops", "--scope", "admin", "--json")
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert first.stderr.count(str(key_file)) == 1
    token = json.loads(first.stdout)
    listed = cli(env, "tokens", "list", "--json")
    assert str(key_file) not in listed.stderr
    assert [item["id"] for item in json.loads(listed.stdout)] == [token["id"]]
    with running_server(env, free_port()):
        pass  # it started, so the key file's key decrypts the token the CLI wrote


def test_a_configured_key_always_wins_over_the_key_file(embedded_env: dict[str, str], tmp_path: Path) -> None:
    configured = {**embedded_env, "CHARGEWIRE_SECRET_KEY": OTHER_KEY}
    cli(configured, "tokens", "create", "--name", "ops", "--scope", "admin")
    assert not (tmp_path / "data" / "secret.key").exists()


def test_cli_refuses_a_key_that_differs_from_the_stored_secrets_key_before_writing_anything(
    embedded_env: dict[str, str], tmp_path: Path
) -> None:
    env = embedded_env
    cli(env, "tokens", "create", "--name", "ops", "--scope", "admin")
    refused = cli(
        {**env, "CHARGEWIRE_SECRET_KEY": OTHER_KEY}, "tokens", "create", "--name", "x", "--scope", "admin", check=False
    )
    assert refused.returncode == 1
    assert "does not decrypt the tokens and secrets already stored" in refused.stderr
    assert str(tmp_path / "data" / "secret.key") in refused.stderr
    assert [token["name"] for token in json.loads(cli(env, "tokens", "list", "--json").stdout)] == ["ops"]


def test_serve_refuses_to_start_with_a_key_that_differs_from_the_stored_secrets_key(
    embedded_env: dict[str, str],
) -> None:
    env = embedded_env
    cli(env, "tokens", "create", "--name", "ops", "--scope", "admin")
    result = subprocess.run(
        [CHARGEWIRE, "serve", "--port", str(free_port())],
        env={**os.environ, **env, "CHARGEWIRE_SECRET_KEY": OTHER_KEY},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "does not decrypt the tokens and secrets already stored" in result.stderr


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
def test_another_configured_key_is_refused_on_every_store(migrated_env: dict[str, str]) -> None:
    cli(migrated_env, "tokens", "create", "--name", "ops", "--scope", "admin")
    refused = cli({**migrated_env, "CHARGEWIRE_SECRET_KEY": OTHER_KEY}, "tokens", "list", check=False)
    assert refused.returncode == 1
    assert "The secret key from CHARGEWIRE_SECRET_KEY does not decrypt" in refused.stderr


def test_without_a_key_off_the_embedded_default_the_error_says_where_the_demo_key_is(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    key_file = tmp_path / "data" / "secret.key"
    key_file.parent.mkdir()
    key_file.write_text("a-demo-key-made-by-make-demo-0123456789abcdef\n")
    result = cli(_without_key(cli_env), "tokens", "list", check=False)
    assert result.returncode == 1
    assert "CHARGEWIRE_SECRET_KEY is not set" in result.stderr
    assert f"keeps its key in {key_file}" in result.stderr
