"""The `chargewire` command line: parse, call a service, print.

Each command imports the runtime, services, stores, clients and asyncio it calls inside its own body (annotations
come from `TYPE_CHECKING` imports): at module level they made every command, `chargewire --help` included, spend
about 1.4 s importing the whole service first. The CLI's modules themselves import only typer and light
chargewire modules (errors, models, version); tests/unit/cli/test_startup.py holds them to it. Likewise `worker`
loads no web app and the database commands no delivery loop (`cli.serving`, `chargewire.runtime`).
"""

from __future__ import annotations

import typer

from chargewire.cli import db, dev, events, ocpp, subscriptions, tokens, users
from chargewire.cli.demo import demo
from chargewire.cli.listen import listen
from chargewire.cli.serve import serve, worker
from chargewire.cli.simulate import simulate

app = typer.Typer(
    help="chargewire: notifications for EV-charging back offices, as signed webhooks and Kafka records.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(db.app, name="db")
app.add_typer(events.app, name="events")
app.add_typer(tokens.app, name="tokens")
app.add_typer(subscriptions.app, name="subscriptions")
app.add_typer(users.app, name="users")
app.add_typer(dev.app, name="dev")
app.add_typer(ocpp.app, name="ocpp")
app.command()(serve)
app.command()(worker)
app.command()(demo)
app.command()(listen)
app.command()(simulate)

__all__ = ["app"]
