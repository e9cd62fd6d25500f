"""API access tokens: list, create (the text is shown once), revoke."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from chargewire.backoffice.guards import CheckedForm, Operator, runtime_of
from chargewire.backoffice.rendering import PREFIX, render, session_of
from chargewire.errors import NotFound, ValidationFailed
from chargewire.ids import has_prefix
from chargewire.models import Scope

router = APIRouter()
SCOPES = [scope.value for scope in Scope]


async def _tokens_page(
    request: Request, status_code: int = 200, errors: dict[str, list[str]] | None = None, name: str = ""
) -> Response:
    tokens = await runtime_of(request).tokens.list(include_revoked=True)
    return render(
        request, "tokens/list.html", status_code, tokens=tokens, scopes=SCOPES, errors=errors or {}, name=name
    )


@router.get("/tokens")
async def tokens_page(request: Request, _: Operator) -> Response:
    """Every token (never its text) and the form to make one."""
    return await _tokens_page(request)


@router.post("/tokens")
async def create_token(request: Request, _: Operator, form: CheckedForm) -> Response:
    """Make a token and show its text, this once."""
    name = str(form.get("name", ""))
    scopes = [str(scope) for scope in form.getlist("scopes")]
    try:
        created = await runtime_of(request).tokens.create(name, scopes)
    except ValidationFailed as failure:
        return await _tokens_page(request, 422, failure.errors, name)
    return render(request, "tokens/created.html", created=created)


@router.get("/tokens/{token_id}/revoke")
async def confirm_revoke(request: Request, _: Operator, token_id: str) -> Response:
    """Ask before revoking."""
    if not has_prefix(token_id, "tok"):
        raise NotFound("No token with that id.")
    token = await runtime_of(request).tokens.get(token_id)
    return render(request, "tokens/revoke.html", token=token)


@router.post("/tokens/{token_id}/revoke")
async def revoke(request: Request, _: Operator, token_id: str, form: CheckedForm) -> Response:
    """Revoke a token: requests with it are refused from now on."""
    if not has_prefix(token_id, "tok"):
        raise NotFound("No token with that id.")
    await runtime_of(request).tokens.revoke(token_id)
    session_of(request).flash("ok", f"Token {token_id} revoked.")
    return RedirectResponse(f"{PREFIX}/tokens", status_code=303)
