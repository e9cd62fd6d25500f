"""Environment for running the real CLI and server against a fresh database on each backend."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import TEST_SECRET_KEY, copied_sqlite_template


@pytest.fixture
def cli_env(database_url: str, tmp_path: Path) -> dict[str, str]:
    """CHARGEWIRE_* variables for a subprocess using this test's database."""
    return {
        "CHARGEWIRE_DATABASE_URL": database_url,
        "CHARGEWIRE_SECRET_KEY": TEST_SECRET_KEY,
        "CHARGEWIRE_DATA_DIR": str(tmp_path / "data"),
        "CHARGEWIRE_CONFIG": str(tmp_path / "absent.toml"),
        # These tests poll the API far more than a client would; the budgets have tests of their own.
        "CHARGEWIRE_API_RATE_LIMIT_PER_MINUTE": "1000000",
    }


@pytest.fixture
def migrated_env(cli_env: dict[str, str], sqlite_template: Path) -> dict[str, str]:
    """`cli_env` on a database already at the newest schema, for tests of the commands that use one.

    A SQLite database starts as a copy of the migrated template, as on PostgreSQL: a `chargewire db upgrade`
    subprocess took 1-1.5 s of CPU before each of these tests (`db upgrade` has tests of its own).
    """
    copied_sqlite_template(cli_env["CHARGEWIRE_DATABASE_URL"], sqlite_template)
    return cli_env
