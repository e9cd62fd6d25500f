"""Signing in and out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from chargewire.backoffice.guards import CheckedForm, runtime_of
from chargewire.backoffice.rendering import PREFIX, render, session_of
from chargewire.errors import Unauthenticated

router = APIRouter()


def _safe_next(target: str | None) -> str:
    """Where to go after signing in: a back-office path, never another site (`//evil.example`)."""
    if target and target.startswith(f"{PREFIX}/") and not target.startswith("//") and "\\" not in target:
        return target
    return f"{PREFIX}/overview"


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
    """Check the email and password; start a new session on success."""
    email, password = str(form.get("email", "")), str(form.get("password", ""))
    target = _safe_next(str(form.get("next", "")))
    try:
        user = await runtime_of(request).users.authenticate(email, password)
    except Unauthenticated as failure:
        return render(request, "sign_in.html", 401, next=target, email=email, error=failure.message)
    session_of(request).sign_in(user.id)
    return RedirectResponse(target, status_code=303)


@router.post("/sign-out")
async def sign_out(request: Request, _: CheckedForm) -> Response:
    """End the session."""
    session = session_of(request)
    session.sign_out()
    session.flash("ok", "You are signed out.")
    return RedirectResponse(f"{PREFIX}/sign-in", status_code=303)
