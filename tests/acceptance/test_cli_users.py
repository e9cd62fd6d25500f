"""`chargewire users`, run as a subprocess: operators for the back office."""

from __future__ import annotations

import json
import os
import subprocess

from tests.support.processes import CHARGEWIRE, cli, in_process


def test_operators_are_created_with_a_password_or_a_prompt_and_listed(migrated_env: dict[str, str]) -> None:
    created = cli(
        migrated_env, "users", "create", "--email", "ops@example.com", "--password", "a long operator password"
    )
    assert "ops@example.com" in created.stdout
    prompted = subprocess.run(
        [CHARGEWIRE, "users", "create", "--email", "night@example.com"],
        input="another long password\nanother long password\n",
        env={**os.environ, **migrated_env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert prompted.returncode == 0, prompted.stderr
    listed = json.loads(cli(migrated_env, "users", "list", "--json").stdout)
    assert [user["email"] for user in listed] == ["ops@example.com", "night@example.com"]
    assert "password" not in json.dumps(listed)


def test_a_taken_email_or_a_short_password_is_refused_naming_the_field(migrated_env: dict[str, str]) -> None:
    in_process(migrated_env, lambda runtime: runtime.users.create("ops@example.com", "a long operator password"))
    taken = cli(migrated_env, "users", "create", "--email", "OPS@example.com", "--password", "x" * 20, check=False)
    assert taken.returncode == 1
    assert "email: There is already a user ops@example.com." in taken.stderr
    short = cli(migrated_env, "users", "create", "--email", "b@example.com", "--password", "short", check=False)
    assert short.returncode == 1
    assert "password: The password must be at least 12 characters." in short.stderr
