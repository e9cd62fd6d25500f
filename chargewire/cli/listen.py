"""`chargewire listen`: receive chosen events on this machine, verified and pretty-printed, for development."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from chargewire.cli.common import run

if TYPE_CHECKING:
    from chargewire.devtools.listener import Arrival, ListenOptions


def listen(
    event: Annotated[list[str], typer.Option("--events", "--event", help="Event names, comma-separated or repeated")],
    forward_to: Annotated[
        str | None, typer.Option(help="Forward each delivery unchanged to this URL, e.g. http://localhost:3000/hooks")
    ] = None,
    api_url: Annotated[
        str, typer.Option(envvar="CHARGEWIRE_API_URL", help="The running chargewire")
    ] = "http://127.0.0.1:8000",
    token: Annotated[
        str, typer.Option(envvar="CHARGEWIRE_TOKEN", help="API token with notifications:manage (keys X-Signature)")
    ] = "",
    port: Annotated[int, typer.Option(help="Loopback port to listen on; 0 picks a free one")] = 0,
) -> None:
    """Subscribe a temporary local listener, print each delivery with its signature verdict; Ctrl-C removes it.

    The service must be allowed to deliver to loopback (`make demo` is; otherwise set
    CHARGEWIRE_DELIVERY_ALLOW_NETWORKS=127.0.0.0/8 on the service).
    """
    from chargewire.devtools.listener import ListenOptions

    if not token:
        raise typer.BadParameter("give --token or set CHARGEWIRE_TOKEN", param_hint="--token")
    names = [name for option in event for name in option.split(",") if name]
    options = ListenOptions(api_url=api_url, token=token, events=names, forward_to=forward_to, port=port)
    run(_listen(options))


async def _listen(options: ListenOptions) -> None:
    import asyncio
    import signal

    from chargewire.devtools.listener import Listener

    listener = Listener(options, _print_arrival)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    subscription_id = await listener.start()
    try:
        typer.echo(f"Listening on {listener.url} as subscription {subscription_id} for: {', '.join(options.events)}")
        if options.forward_to:
            typer.echo(f"Forwarding each delivery unchanged to {options.forward_to}")
        typer.echo("Ready. Ctrl-C removes the subscription and stops.")
        await stop.wait()
    finally:
        await listener.aclose()
        typer.echo(f"Removed subscription {subscription_id}.")


def _print_arrival(arrival: Arrival) -> None:
    latency = f"{arrival.latency_ms:.0f} ms" if arrival.latency_ms is not None else "-"
    mark = "✔" if arrival.verdict == "verified" else "✘"
    typer.echo(
        f"{mark} {arrival.event}  webhook-id {arrival.webhook_id}  subscription {arrival.subscription_id}"
        f"  latency {latency}  signature {arrival.verdict}"
    )
    if arrival.forwarded is not None:
        answer = arrival.forwarded
        status = answer.status if answer.status is not None else "no answer"
        typer.echo(f"    → forwarded: {status} {answer.reason} ({answer.elapsed_ms:.0f} ms)")
