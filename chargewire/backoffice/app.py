"""The back office as an ASGI app of its own, mounted at `/backoffice`: sessions, pages, static files, and
errors shown as pages (the API's JSON error mapping does not apply here)."""

from __future__ import annotations

import logging
from importlib import resources
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.staticfiles import StaticFiles

from chargewire.backoffice.guards import CsrfRejected, SignInRequired
from chargewire.backoffice.rendering import PREFIX, render
from chargewire.backoffice.routes import (
    catalog,
    charge_points,
    deliveries,
    overview,
    sign_in,
    subscription_actions,
    subscriptions,
)
from chargewire.backoffice.routes import tokens as token_pages
from chargewire.backoffice.session import SessionMiddleware, SessionSigner
from chargewire.errors import (
    ChargewireError,
    Conflict,
    DatabaseUnavailable,
    NotFound,
    PermissionDenied,
    ValidationFailed,
)
from chargewire.runtime import Runtime
from chargewire.security.key_file import resolve_secret_key
from chargewire.services.backoffice_sessions import BackofficeSessions
from chargewire.services.sign_in_throttle import SignInThrottle
from chargewire.store.outage import is_unavailable

logger = logging.getLogger(__name__)

_STATUS_BY_ERROR: tuple[tuple[type[ChargewireError], int], ...] = (
    (ValidationFailed, 422),
    (PermissionDenied, 403),
    (NotFound, 404),
    (Conflict, 409),
)


def create_backoffice(runtime: Runtime) -> FastAPI:
    """The Notifications section's pages on an open runtime, to mount at PREFIX."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.state.runtime = runtime
    for module in (
        sign_in,
        overview,
        subscriptions,
        subscription_actions,
        deliveries,
        token_pages,
        catalog,
        charge_points,
    ):
        app.include_router(module.router)
    static = resources.files("chargewire.backoffice") / "static"
    app.mount("/static", StaticFiles(directory=str(static)), name="static")
    _install_error_pages(app)
    signer = SessionSigner(resolve_secret_key(runtime.settings).value)
    app.state.signer = signer
    app.state.sessions = BackofficeSessions.on(runtime.database, signer.max_age_s)
    app.state.sign_in_throttle = SignInThrottle()
    app.add_middleware(SessionMiddleware, signer=signer, path=PREFIX)
    return app


def _install_error_pages(app: FastAPI) -> None:
    async def on_sign_in_required(request: Request, _: Exception) -> Response:
        if request.url.path.startswith(f"{PREFIX}/api/"):
            return JSONResponse({"message": "Sign in first."}, status_code=401)
        # After signing in, come back to the page asked for; a form posted with an expired session is not replayed.
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        query = urlencode({"next": target if request.method == "GET" else f"{PREFIX}/overview"})
        return RedirectResponse(f"{PREFIX}/sign-in?{query}", status_code=303)

    async def on_csrf_rejected(request: Request, _: Exception) -> Response:
        message = "This form has expired or did not come from this page. Go back, reload the page and try again."
        return render(request, "error.html", 403, title="Form expired", message=message)

    async def on_chargewire_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ChargewireError)
        status = next((code for kind, code in _STATUS_BY_ERROR if isinstance(exc, kind)), 500)
        if status == 500:
            logger.error("back office: unmapped error on %s: %s", request.url.path, exc.message)
            return render(request, "error.html", 500, title="Something went wrong", message="Server Error")
        return render(request, "error.html", status, title=_TITLES.get(status, "Error"), message=exc.message)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        return render(
            request, "error.html", exc.status_code, title=_TITLES.get(exc.status_code, "Error"), message=str(exc.detail)
        )

    async def on_bad_request(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        names = ", ".join(".".join(str(part) for part in error["loc"][1:]) for error in exc.errors())
        return render(request, "error.html", 400, title="Bad request", message=f"These values are not valid: {names}.")

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        if is_unavailable(exc):
            return _database_unavailable(request)
        logger.exception("back office: unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
        return render(request, "error.html", 500, title="Something went wrong", message="Server Error")

    app.add_exception_handler(DatabaseUnavailable, lambda request, _exc: _database_unavailable(request))
    app.add_exception_handler(SignInRequired, on_sign_in_required)
    app.add_exception_handler(CsrfRejected, on_csrf_rejected)
    app.add_exception_handler(ChargewireError, on_chargewire_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_bad_request)
    app.add_exception_handler(Exception, on_unexpected)


def _database_unavailable(request: Request) -> Response:
    """A page (or, for the page scripts, JSON) saying the database is unavailable: an outage, not a bug."""
    headers = {"Retry-After": str(DatabaseUnavailable.retry_after_s)}
    if request.url.path.startswith(f"{PREFIX}/api/"):
        return JSONResponse({"message": DatabaseUnavailable().message}, status_code=503, headers=headers)
    message = "The database cannot be reached right now, so this page cannot be shown. Delivery resumes by itself "
    message += "once it is back; reload this page in a few seconds."
    response = render(request, "error.html", 503, title="Database unavailable", message=message)
    response.headers.update(headers)
    return response


_TITLES = {
    400: "Bad request",
    403: "Not allowed",
    404: "Not found",
    405: "Not allowed",
    409: "Not now",
    422: "Not valid",
}
