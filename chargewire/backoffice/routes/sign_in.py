"""Signing in and out, throttled sign-in attempts, and each operator's list of sessions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from chargewire.backoffice.guards import CheckedForm, Operator, runtime_of
from chargewire.backoffice.rendering import PREFIX, render, session_of
from chargewire.backoffice.session import SessionSigner
from chargewire.errors import Unauthenticated
from chargewire.services.backoffice_sessions import BackofficeSessions, session_hash
from chargewire.services.sign_in_throttle import SignInThrottle
from chargewire.services.users import normalize_email

router = APIRouter()

KNOWN_CLIENT_COOKIE = "chargewire_known_client"
_KNOWN_CLIENT_MAX_AGE_S = 365 * 24 * 3600


def _safe_next(target: str | None) -> str:
    """Where to go after signing in: a back-office path, never another site (`//evil.example`)."""
    if target and target.startswith(f"{PREFIX}/") and not target.startswith("//") and "\\" not in target:
        return target
    return f"{PREFIX}/overview"


def sessions_of(request: Request) -> BackofficeSessions:
    """The server-side sessions the back office was built with."""
    sessions: BackofficeSessions = request.app.state.sessions
    return sessions


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.get("/")
async def home() -> Response:
    """The back office starts at the overview."""
    return RedirectResponse(f"{PREFIX}/overview", status_code=303)


@router.get("/sign-in")
async def sign_in_page(request: Request, next: Annotated[str | None, Query(max_length=500)] = None) -> Response:
    """The sign-in form."""
    return render(request, "sign_in.html", next=_safe_next(next), email="", error=None)


@router.post("/sign-in")
async def sign_in(request: Request, form: CheckedForm) -> Response:
    """Check the email and password, unless this client must wait; start a new server-side session on success."""
    email, password = str(form.get("email", "")), str(form.get("password", ""))
    target = _safe_next(str(form.get("next", "")))
    throttle: SignInThrottle = request.app.state.sign_in_throttle
    signer: SessionSigner = request.app.state.signer
    account, client = normalize_email(email), _client(request)
    wait_s = throttle.wait_s(account, client, signer.is_known_client(request.cookies.get(KNOWN_CLIENT_COOKIE), account))
    if wait_s:
        error = f"Too many failed sign-ins. Try again in {wait_s} seconds."
        page = render(request, "sign_in.html", 429, next=target, email=email, error=error)
        page.headers["Retry-After"] = str(wait_s)
        return page
    try:
        user = await runtime_of(request).users.authenticate(email, password)
    except Unauthenticated as failure:
        throttle.failed(account, client)
        return render(request, "sign_in.html", 401, next=target, email=email, error=failure.message)
    throttle.succeeded(account, client)
    session_id = await sessions_of(request).start(user.id, client, request.headers.get("user-agent", ""))
    session_of(request).sign_in(user.id, session_id)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        KNOWN_CLIENT_COOKIE,
        signer.known_client_mark(account),
        max_age=_KNOWN_CLIENT_MAX_AGE_S,
        path=PREFIX,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/sign-out")
async def sign_out(request: Request, _: CheckedForm) -> Response:
    """End the session, on the server too: a copy of this cookie elsewhere stops working as well."""
    session = session_of(request)
    await sessions_of(request).end(session.session_id)
    session.sign_out()
    session.flash("ok", "You are signed out.")
    return RedirectResponse(f"{PREFIX}/sign-in", status_code=303)


@router.get("/sessions")
async def session_list(request: Request, user: Operator) -> Response:
    """The signed-in operator's sessions: when and from where each began."""
    sessions = await sessions_of(request).list(user.id)
    current = session_of(request).session_id
    return render(request, "sessions.html", sessions=sessions, current=session_hash(current) if current else None)


@router.post("/sessions/sign-out-all")
async def sign_out_everywhere(request: Request, user: Operator, _: CheckedForm) -> Response:
    """End every session of the signed-in operator, this one included."""
    ended = await sessions_of(request).end_all(user.id)
    session = session_of(request)
    session.sign_out()
    session.flash("ok", f"Signed out of {ended} session{'s' if ended != 1 else ''}.")
    return RedirectResponse(f"{PREFIX}/sign-in", status_code=303)
