"""`chargewire subscriptions` as a subprocess: create (the signing secret once), list, show, delete."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chargewire.devtools.certificates import generate_tls_files
from chargewire.services.subscriptions import OPERATOR
from tests.support.processes import cli, in_process, token_made_in_process


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
def test_subscription_lifecycle_create_list_show_delete(migrated_env: dict[str, str]) -> None:
    migrated_env = {**migrated_env, "CHARGEWIRE_DELIVERY_ALLOW_NETWORKS": "127.0.0.0/8"}
    token_id = token_made_in_process(migrated_env, "admin").token.id
    webhook = json.loads(
        cli(
            migrated_env, "subscriptions", "create", "--token-id", token_id, "--via", "webhook",
            "--url", "http://127.0.0.1:9/hook", "--event", "BootNotification", "--event", "cdr.received", "--json",
        ).stdout
    )  # fmt: skip
    assert webhook["signingSecret"].startswith("whsec_")
    kafka = json.loads(
        cli(
            {**migrated_env, "CHARGEWIRE_SASL_PASSWORD": "cli-sasl-password"}, "subscriptions", "create",
            "--token-id", token_id, "--via", "kafka", "--topic", "events", "--broker", "127.0.0.1:9092",
            "--security-protocol", "SASL_PLAINTEXT", "--sasl-username", "u", "--event", "evse.changed", "--json",
        ).stdout
    )  # fmt: skip

    listed = json.loads(cli(migrated_env, "subscriptions", "list", "--json").stdout)
    assert [item["id"] for item in listed] == sorted([webhook["id"], kafka["id"]])
    assert webhook["signingSecret"] not in json.dumps(listed)
    assert "cli-sasl-password" not in json.dumps(listed)
    shown = json.loads(cli(migrated_env, "subscriptions", "show", kafka["id"], "--json").stdout)
    assert shown["kafka"]["securityProtocol"] == "SASL_PLAINTEXT"
    assert shown["tokenId"] == token_id

    cli(migrated_env, "subscriptions", "delete", webhook["id"])
    assert _stored_ids(migrated_env) == [kafka["id"]]


def _stored_ids(env: dict[str, str]) -> list[str]:
    """The ids of the stored subscriptions, oldest first, read in this process (`subscriptions list` has its test)."""
    page = in_process(env, lambda runtime: runtime.subscriptions.list_page(OPERATOR))
    assert page.next_cursor is None
    return [subscription.id for subscription in page.items]


def test_create_with_a_bad_url_fails_naming_the_field(migrated_env: dict[str, str]) -> None:
    token_id = token_made_in_process(migrated_env, "admin").token.id
    arguments = [
        "subscriptions",
        "create",
        "--token-id",
        token_id,
        "--url",
        "ftp://x",
        "--event",
        "BootNotification",
    ]
    result = cli(migrated_env, *arguments, check=False)
    assert result.returncode == 1
    assert "webhook.callbackUrl" in result.stderr


def _created(cli_env: dict[str, str], *arguments: str, scope: str = "admin") -> dict[str, Any]:
    """Create an owner token with `scope`, then a subscription with `arguments`; its JSON."""
    token_id = token_made_in_process(cli_env, scope).token.id
    created = cli(cli_env, "subscriptions", "create", "--token-id", token_id, *arguments, "--json")
    return dict(json.loads(created.stdout))


def test_create_refuses_an_owner_token_without_notifications_manage(migrated_env: dict[str, str]) -> None:
    token_id = token_made_in_process(migrated_env, "events:publish", "csms").token.id
    arguments = ["--url", "https://hooks.example.com/x", "--event", "BootNotification"]
    result = cli(migrated_env, "subscriptions", "create", "--token-id", token_id, *arguments, check=False)
    assert result.returncode == 1
    assert "lacks the notifications:manage scope" in result.stderr
    assert _stored_ids(migrated_env) == []


def test_create_takes_filter_retry_schedule_and_disabled_as_the_api_does(migrated_env: dict[str, str]) -> None:
    created = _created(
        migrated_env, "--url", "https://hooks.example.com/x", "--event", "SessionUpdateNotification",
        "--filter", '{"chargePointId": {"$in": [1042, 1043]}}', "--retry-schedule", "0,5,300", "--disabled",
        scope="notifications:manage",
    )  # fmt: skip
    shown = json.loads(cli(migrated_env, "subscriptions", "show", created["id"], "--json").stdout)
    assert shown["filter"] == {"chargePointId": {"$in": [1042, 1043]}}
    assert shown["retrySchedule"] == [0, 5, 300]
    assert shown["enabled"] is False


def test_create_reads_kafka_tls_material_from_files(migrated_env: dict[str, str], tmp_path: Path) -> None:
    tls = generate_tls_files(tmp_path / "tls")
    created = _created(
        {**migrated_env, "CHARGEWIRE_DELIVERY_ALLOW_NETWORKS": "127.0.0.0/8"}, "--via", "kafka", "--topic", "events",
        "--broker", "127.0.0.1:9093", "--security-protocol", "SSL", "--ca-certificate", str(tls.ca_pem),
        "--client-certificate", str(tls.client_cert_pem), "--client-key", str(tls.client_key_pem),
        "--event", "evse.changed",
    )  # fmt: skip
    assert created["kafka"]["caCertificate"] == tls.ca_pem.read_text()
    assert created["kafka"]["clientCertificate"] == tls.client_cert_pem.read_text()
    assert "PRIVATE KEY" not in json.dumps(created)


def test_a_loopback_url_is_refused_once_naming_the_setting_that_admits_it(migrated_env: dict[str, str]) -> None:
    token_id = token_made_in_process(migrated_env, "admin").token.id
    arguments = ["--url", "http://127.0.0.1:9/hook", "--event", "BootNotification"]
    result = cli(migrated_env, "subscriptions", "create", "--token-id", token_id, *arguments, check=False)
    assert result.returncode == 1
    assert "CHARGEWIRE_DELIVERY_ALLOW_NETWORKS" in result.stderr
    assert result.stderr.count("blocked address") == 1
