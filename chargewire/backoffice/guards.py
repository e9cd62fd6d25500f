"""What every back-office route checks: a signed-in operator, and a CSRF token on each POST."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.datastructures import FormData

from chargewire.backoffice.csrf import FIELD_NAME, csrf_matches, same_origin
from chargewire.backoffice.rendering import session_of
from chargewire.errors import NotFound
from chargewire.runtime import Runtime
from chargewire.services.backoffice_sessions import BackofficeSessions
from chargewire.store.user_store import User


class SignInRequired(Exception):
    """No operator is signed in (or the session ran out)."""


class CsrfRejected(Exception):
    """A POST came without this session's CSRF token, or from another origin."""


def runtime_of(request: Request) -> Runtime:
    """The runtime the back office was built on."""
    runtime: Runtime = request.app.state.runtime
    return runtime


async def current_user(request: Request) -> User:
    """The signed-in operator; SignInRequired sends the browser to the sign-in page."""
    session = session_of(request)
    if session.user_id is None:
        raise SignInRequired()
    sessions: BackofficeSessions = request.app.state.sessions
    if not await sessions.is_live(session.session_id, session.user_id):  # signed out, here or in a copy
        session.sign_out()
        raise SignInRequired()
    try:
        user = await runtime_of(request).users.get(session.user_id)
    except NotFound as exc:  # the user was removed while signed in
        session.sign_out()
        raise SignInRequired() from exc
    request.state.user = user
    return user


async def checked_form(request: Request) -> FormData:
    """The submitted form, once its CSRF token and origin are checked."""
    form = await request.form()
    session = session_of(request)
    if not same_origin(request.headers.get("origin"), request.headers.get("host")):
        raise CsrfRejected()
    if not csrf_matches(session.csrf, form.get(FIELD_NAME)):
        raise CsrfRejected()
    return form


Operator = Annotated[User, Depends(current_user)]
CheckedForm = Annotated[FormData, Depends(checked_form)]
