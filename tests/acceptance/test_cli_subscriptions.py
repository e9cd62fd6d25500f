"""`chargewire subscriptions` as a subprocess: create (the signing secret once), list, show, delete."""

from __future__ import annotations

import json

import pytest

from tests.support.processes import cli


@pytest.mark.parametrize("command", [[], ["list"], ["show"], ["create"], ["delete"]], ids=lambda c: " ".join(c) or "-")
def test_every_subscriptions_command_has_help(command: list[str]) -> None:
    assert "Usage:" in cli({}, "subscriptions", *command, "--help").stdout


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
def test_subscription_lifecycle_create_list_show_delete(cli_env: dict[str, str]) -> None:
    cli_env = {**cli_env, "CHARGEWIRE_DELIVERY_ALLOW_NETWORKS": "127.0.0.0/8"}
    cli(cli_env, "db", "upgrade")
    token = json.loads(cli(cli_env, "tokens", "create", "--name", "ops", "--scope", "admin", "--json").stdout)
    webhook = json.loads(
        cli(
            cli_env, "subscriptions", "create", "--token-id", token["id"], "--via", "webhook",
            "--url", "http://127.0.0.1:9/hook", "--event", "BootNotification", "--event", "cdr.received", "--json",
        ).stdout
    )  # fmt: skip
    assert webhook["signingSecret"].startswith("whsec_")
    kafka = json.loads(
        cli(
            {**cli_env, "CHARGEWIRE_SASL_PASSWORD": "cli-sasl-password"}, "subscriptions", "create",
            "--token-id", token["id"], "--via", "kafka", "--topic", "events", "--broker", "127.0.0.1:9092",
            "--security-protocol", "SASL_PLAINTEXT", "--sasl-username", "u", "--event", "evse.changed", "--json",
        ).stdout
    )  # fmt: skip

    listed = json.loads(cli(cli_env, "subscriptions", "list", "--json").stdout)
    assert [item["id"] for item in listed] == sorted([webhook["id"], kafka["id"]])
    assert webhook["signingSecret"] not in json.dumps(listed)
    assert "cli-sasl-password" not in json.dumps(listed)
    shown = json.loads(cli(cli_env, "subscriptions", "show", kafka["id"], "--json").stdout)
    assert shown["kafka"]["securityProtocol"] == "SASL_PLAINTEXT"
    assert shown["tokenId"] == token["id"]

    cli(cli_env, "subscriptions", "delete", webhook["id"])
    assert [item["id"] for item in json.loads(cli(cli_env, "subscriptions", "list", "--json").stdout)] == [kafka["id"]]


def test_create_with_a_bad_url_fails_naming_the_field(cli_env: dict[str, str]) -> None:
    cli(cli_env, "db", "upgrade")
    token = json.loads(cli(cli_env, "tokens", "create", "--name", "ops", "--scope", "admin", "--json").stdout)
    arguments = [
        "subscriptions",
        "create",
        "--token-id",
        token["id"],
        "--url",
        "ftp://x",
        "--event",
        "BootNotification",
    ]
    result = cli(cli_env, *arguments, check=False)
    assert result.returncode == 1
    assert "webhook.callbackUrl" in result.stderr
