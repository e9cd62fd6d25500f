"""`chargewire subscriptions`: list, show, create and delete subscriptions as the operator (sees all)."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from chargewire.cli.common import print_json, print_table, with_runtime
from chargewire.errors import ValidationFailed
from chargewire.models import Subscription, Via

if TYPE_CHECKING:
    from chargewire.runtime import Runtime
    from chargewire.services.subscriptions import CreatedSubscription

app = typer.Typer(help="Subscriptions: list, show, create, delete.", no_args_is_help=True)


class ViaChoice(StrEnum):
    """How the subscription receives events."""

    WEBHOOK = "webhook"
    KAFKA = "kafka"


def _subscription_json(subscription: Subscription) -> dict[str, Any]:
    kafka = subscription.kafka
    return {
        "id": subscription.id,
        "via": str(subscription.via),
        "notifications": list(subscription.notifications),
        "callbackUrl": subscription.callback_url,
        "kafka": {
            "topic": kafka.topic,
            "brokers": list(kafka.brokers),
            "compressionCodec": kafka.compression_codec,
            "securityProtocol": kafka.security_protocol,
            "saslMechanism": kafka.sasl_mechanism,
            "saslUsername": kafka.sasl_username,
            "caCertificate": kafka.ca_certificate,
            "clientCertificate": kafka.client_certificate,
        }
        if kafka
        else None,
        "tokenId": subscription.token_id,
        "apiVersion": subscription.api_version,
        "enabled": subscription.enabled,
        "description": subscription.description,
        "filter": subscription.filter,
        "retrySchedule": list(subscription.retry_schedule_s) if subscription.retry_schedule_s else None,
        "createdAt": subscription.created_at.isoformat(),
        "updatedAt": subscription.updated_at.isoformat(),
    }


def _target(subscription: Subscription) -> str:
    if subscription.via is Via.WEBHOOK:
        return subscription.callback_url or ""
    kafka = subscription.kafka
    return f"{kafka.topic} @ {','.join(kafka.brokers)}" if kafka else ""


@app.command("list")
def list_subscriptions(as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False) -> None:
    """List every subscription, oldest first."""
    from chargewire.services.subscriptions import OPERATOR

    async def action(runtime: Runtime) -> list[Subscription]:
        found: list[Subscription] = []
        cursor: str | None = None
        while True:
            page = await runtime.subscriptions.list_page(OPERATOR, cursor=cursor)
            found.extend(page.items)
            if page.next_cursor is None:
                return found
            cursor = page.next_cursor

    subscriptions = with_runtime(action)
    if as_json:
        print_json([_subscription_json(s) for s in subscriptions])
        return
    print_table(
        ["ID", "VIA", "ENABLED", "EVENTS", "TARGET", "TOKEN"],
        [
            [s.id, str(s.via), "yes" if s.enabled else "no", str(len(s.notifications)), _target(s), s.token_id]
            for s in subscriptions
        ],
    )


@app.command()
def show(
    subscription_id: Annotated[str, typer.Argument(help="The subscription id (sub_...)")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Show one subscription (never its secrets)."""
    from chargewire.services.subscriptions import OPERATOR

    async def action(runtime: Runtime) -> Subscription:
        return await runtime.subscriptions.get(OPERATOR, subscription_id)

    data = _subscription_json(with_runtime(action))
    if as_json:
        print_json(data)
        return
    for key, value in data.items():
        typer.echo(f"{key + ':':15} {value if value is not None else '-'}")


def _read_file(path: Path | None, option: str) -> str | None:
    """The text of a PEM file named by `option`, or None when not given."""
    if path is None:
        return None
    try:
        return path.read_text()
    except OSError as exc:
        raise ValidationFailed({option: [f"Cannot read {path}: {exc.strerror}."]}) from exc


def _json_option(text: str | None, option: str) -> Any:
    """A JSON value given on the command line, or None when not given."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ValidationFailed({option: [f"Not valid JSON: {exc}."]}) from exc


def _retry_schedule(text: str | None) -> list[float] | None:
    """Comma-separated delays in seconds, as CHARGEWIRE_RETRY_SCHEDULE_S takes them."""
    if text is None:
        return None
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise ValidationFailed({"--retry-schedule": ["Give delays in seconds, separated by commas."]}) from exc


@app.command()
def create(
    token_id: Annotated[str, typer.Option("--token-id", help="The owner token (with notifications:manage or admin)")],
    event: Annotated[list[str], typer.Option("--event", help="An event name; repeat for several")],
    via: Annotated[ViaChoice, typer.Option(help="webhook or kafka")] = ViaChoice.WEBHOOK,
    url: Annotated[str | None, typer.Option(help="Webhook callback URL")] = None,
    topic: Annotated[str | None, typer.Option(help="Kafka topic")] = None,
    broker: Annotated[list[str] | None, typer.Option(help="Kafka broker host:port; repeat for several")] = None,
    security_protocol: Annotated[str, typer.Option(help="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL")] = "PLAINTEXT",
    sasl_mechanism: Annotated[str, typer.Option(help="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")] = "PLAIN",
    sasl_username: Annotated[str | None, typer.Option(help="SASL user name")] = None,
    sasl_password: Annotated[
        str | None, typer.Option(envvar="CHARGEWIRE_SASL_PASSWORD", help="SASL password (or the env variable)")
    ] = None,
    ca_certificate: Annotated[
        Path | None, typer.Option(help="PEM file: the CA that signed the brokers' certificates")
    ] = None,
    client_certificate: Annotated[Path | None, typer.Option(help="PEM file: client certificate (mutual TLS)")] = None,
    client_key: Annotated[Path | None, typer.Option(help="PEM file: the client certificate's unencrypted key")] = None,
    compression_codec: Annotated[str, typer.Option(help="none, gzip, snappy or lz4")] = "gzip",
    filter_json: Annotated[
        str | None, typer.Option("--filter", help='JSON, as the API\'s filter: \'{"chargePointId": {"$in": [1, 2]}}\'')
    ] = None,
    retry_schedule: Annotated[
        str | None, typer.Option(help="Delays in seconds before each attempt, comma-separated: 0,5,300")
    ] = None,
    enabled: Annotated[
        bool, typer.Option("--enabled/--disabled", help="Deliver from now on, or create it paused")
    ] = True,
    description: Annotated[str | None, typer.Option(help="A note for operators")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON with the signing secret")] = False,
) -> None:
    """Create a subscription, as POST /public-api/notifications/v2.0 does; the signing secret is printed once."""

    def body() -> dict[str, Any]:
        document: dict[str, Any] = {"via": via.value, "notifications": event, "enabled": enabled}
        if via is ViaChoice.WEBHOOK:
            document["webhook"] = {"callbackUrl": url}
        else:
            document["kafka"] = {
                "topic": topic,
                "brokers": broker or [],
                "securityProtocol": security_protocol,
                "saslMechanism": sasl_mechanism,
                "saslUsername": sasl_username,
                "saslPassword": sasl_password,
                "compressionCodec": compression_codec,
                "caCertificate": _read_file(ca_certificate, "--ca-certificate"),
                "clientCertificate": _read_file(client_certificate, "--client-certificate"),
                "clientKey": _read_file(client_key, "--client-key"),
            }
        optional = {
            "description": description,
            "filter": _json_option(filter_json, "--filter"),
            "retrySchedule": _retry_schedule(retry_schedule),
        }
        return document | {name: value for name, value in optional.items() if value is not None}

    async def action(runtime: Runtime) -> CreatedSubscription:
        owner = await runtime.tokens.get(token_id)
        return await runtime.subscriptions.create(owner, body())

    created = with_runtime(action)
    if as_json:
        print_json({**_subscription_json(created.subscription), "signingSecret": created.signing_secret})
        return
    typer.echo(f"id:             {created.subscription.id}\nsigning secret: {created.signing_secret}")
    typer.echo("Keep the signing secret now: it is not shown again.", err=True)


@app.command()
def delete(subscription_id: Annotated[str, typer.Argument(help="The subscription id (sub_...)")]) -> None:
    """Delete a subscription and its pending deliveries."""
    from chargewire.services.subscriptions import OPERATOR

    async def action(runtime: Runtime) -> None:
        await runtime.subscriptions.delete(OPERATOR, subscription_id)

    with_runtime(action)
    typer.echo(f"deleted {subscription_id}")


__all__ = ["app"]
