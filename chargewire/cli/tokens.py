"""`chargewire tokens`: create, list and revoke API tokens."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from chargewire.cli.common import print_json, print_table, with_runtime
from chargewire.models import ApiToken, Scope

if TYPE_CHECKING:
    from chargewire.runtime import Runtime
    from chargewire.services.tokens import CreatedToken

app = typer.Typer(help="API tokens: create (shown once), list, revoke.", no_args_is_help=True)


def _token_json(token: ApiToken) -> dict[str, object]:
    return {
        "id": token.id,
        "name": token.name,
        "scopes": [str(scope) for scope in token.scopes],
        "created_at": token.created_at.isoformat(),
        "last_used_at": token.last_used_at.isoformat() if token.last_used_at else None,
        "revoked_at": token.revoked_at.isoformat() if token.revoked_at else None,
    }


@app.command()
def create(
    name: Annotated[str, typer.Option(help="What the token is for")],
    scope: Annotated[list[str], typer.Option(help=f"Repeat for several: {', '.join(s.value for s in Scope)}")],
    as_json: Annotated[bool, typer.Option("--json", help="Print {id, token, scopes} as JSON")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the token's text, for scripts")] = False,
) -> None:
    """Create a token. Its text is printed now and never again."""

    async def action(runtime: Runtime) -> CreatedToken:
        return await runtime.tokens.create(name, scope)

    created = with_runtime(action)
    scopes = [str(s) for s in created.token.scopes]
    if quiet:
        typer.echo(created.text)
        return
    if as_json:
        print_json({"id": created.token.id, "token": created.text, "scopes": scopes})
        return
    typer.echo(f"id:     {created.token.id}\ntoken:  {created.text}\nscopes: {' '.join(scopes)}")
    typer.echo("Keep the token now: it is not shown again.", err=True)


@app.command("list")
def list_tokens(
    include_revoked: Annotated[bool, typer.Option("--all", help="Include revoked tokens")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """List tokens (never their text)."""

    async def action(runtime: Runtime) -> list[ApiToken]:
        return list(await runtime.tokens.list(include_revoked))

    tokens = with_runtime(action)
    if as_json:
        print_json([_token_json(token) for token in tokens])
        return
    print_table(
        ["ID", "NAME", "SCOPES", "LAST USED", "REVOKED"],
        [
            [
                t.id,
                t.name,
                ",".join(t.scopes),
                t.last_used_at.isoformat(timespec="seconds") if t.last_used_at else "-",
                t.revoked_at.isoformat(timespec="seconds") if t.revoked_at else "-",
            ]
            for t in tokens
        ],
    )


@app.command()
def revoke(token_id: Annotated[str, typer.Argument(help="The token id (tok_...)")]) -> None:
    """Revoke a token: requests with it are refused from now on."""

    async def action(runtime: Runtime) -> None:
        await runtime.tokens.revoke(token_id)

    with_runtime(action)
    typer.echo(f"revoked {token_id}")
