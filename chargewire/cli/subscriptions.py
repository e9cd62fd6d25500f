"""`chargewire subscriptions`: list, show, create and delete subscriptions as the operator (sees all)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

import typer

from chargewire.cli.common import print_json, print_table, with_runtime
from chargewire.models import Subscription, Via
from chargewire.runtime import Runtime
from chargewire.services.subscriptions import OPERATOR, CreatedSubscription

app = typer.Typer(help="Subscriptions: list, show, create, delete.", no_args_is_help=True)


class ViaChoice(StrEnum):
    """How the subscription receives events."""

    WEBHOOK = "webhook"
    KAFKA = "kafka"


def _subscription_json(subscription: Subscription) -> dict[str, Any]:
    kafka = subscription.kafka
    return {
        "id": subscription.id,
        "via": subscription.via.value,
        "notifications": list(subscription.notifications),
        "callbackUrl": subscription.callback_url,
        "kafka": {
            "topic": kafka.topic,
            "brokers": list(kafka.brokers),
            "compressionCodec": kafka.compression_codec,
            "securityProtocol": kafka.security_protocol,
            "saslMechanism": kafka.sasl_mechanism,
            "saslUsername": kafka.sasl_username,
        }
        if kafka
        else None,
        "tokenId": subscription.token_id,
        "apiVersion": subscription.api_version,
        "enabled": subscription.enabled,
        "description": subscription.description,
        "filter": subscription.filter,
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
            [s.id, s.via.value, "yes" if s.enabled else "no", str(len(s.notifications)), _target(s), s.token_id]
            for s in subscriptions
        ],
    )


@app.command()
def show(
    subscription_id: Annotated[str, typer.Argument(help="The subscription id (sub_...)")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Show one subscription (never its secrets)."""

    async def action(runtime: Runtime) -> Subscription:
        return await runtime.subscriptions.get(OPERATOR, subscription_id)

    data = _subscription_json(with_runtime(action))
    if as_json:
        print_json(data)
        return
    for key, value in data.items():
        typer.echo(f"{key + ':':15} {value if value is not None else '-'}")


@app.command()
def create(
    token_id: Annotated[str, typer.Option("--token-id", help="The token that owns it; its text keys X-Signature")],
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
    compression_codec: Annotated[str, typer.Option(help="none, gzip, snappy or lz4")] = "gzip",
    description: Annotated[str | None, typer.Option(help="A note for operators")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON with the signing secret")] = False,
) -> None:
    """Create a subscription; its signing secret is printed now and never again."""
    body: dict[str, Any] = {"via": via.value, "notifications": event}
    if via is ViaChoice.WEBHOOK:
        body["webhook"] = {"callbackUrl": url}
    else:
        body["kafka"] = {
            "topic": topic,
            "brokers": broker or [],
            "securityProtocol": security_protocol,
            "saslMechanism": sasl_mechanism,
            "saslUsername": sasl_username,
            "saslPassword": sasl_password,
            "compressionCodec": compression_codec,
        }
    if description is not None:
        body["description"] = description

    async def action(runtime: Runtime) -> CreatedSubscription:
        owner = await runtime.tokens.get(token_id)
        return await runtime.subscriptions.create(owner, body)

    created = with_runtime(action)
    if as_json:
        print_json({**_subscription_json(created.subscription), "signingSecret": created.signing_secret})
        return
    typer.echo(f"id:             {created.subscription.id}\nsigning secret: {created.signing_secret}")
    typer.echo("Keep the signing secret now: it is not shown again.", err=True)


@app.command()
def delete(subscription_id: Annotated[str, typer.Argument(help="The subscription id (sub_...)")]) -> None:
    """Delete a subscription and its pending deliveries."""

    async def action(runtime: Runtime) -> None:
        await runtime.subscriptions.delete(OPERATOR, subscription_id)

    with_runtime(action)
    typer.echo(f"deleted {subscription_id}")


__all__ = ["app"]
