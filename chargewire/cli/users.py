"""`chargewire users`: back-office operators (create, list)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated

import typer

from chargewire.cli.common import print_json, print_table, with_runtime

if TYPE_CHECKING:
    from chargewire.runtime import Runtime
    from chargewire.store.user_store import User

app = typer.Typer(help="Back-office operators: create, list.", no_args_is_help=True)


@app.command()
def create(
    email: Annotated[str, typer.Option(help="The operator's email; it is their sign-in name")],
    password: Annotated[
        str | None, typer.Option(help="Asked for (hidden), with its minimum length, when not given")
    ] = None,
) -> None:
    """Create an operator who can sign in to the back office at /backoffice."""
    from chargewire.services.users import MIN_PASSWORD_LENGTH

    if password is None:
        prompt = f"Password (at least {MIN_PASSWORD_LENGTH} characters)"
        password = typer.prompt(prompt, hide_input=True, confirmation_prompt=True)

    async def action(runtime: Runtime) -> User:
        return await runtime.users.create(email, str(password))

    user = with_runtime(action)
    typer.echo(f"created {user.id} {user.email}")


@app.command("list")
def list_users(as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False) -> None:
    """List operators (never their passwords)."""

    async def action(runtime: Runtime) -> Sequence[User]:
        return await runtime.users.list()

    users = with_runtime(action)
    if as_json:
        print_json(
            [
                {
                    "id": user.id,
                    "email": user.email,
                    "created_at": user.created_at.isoformat(),
                    "last_login_at": user.last_login_at.isoformat() if user.last_login_at else None,
                }
                for user in users
            ]
        )
        return
    print_table(
        ["ID", "EMAIL", "CREATED", "LAST SIGN-IN"],
        [
            [
                user.id,
                user.email,
                user.created_at.isoformat(timespec="seconds"),
                user.last_login_at.isoformat(timespec="seconds") if user.last_login_at else "-",
            ]
            for user in users
        ],
    )
