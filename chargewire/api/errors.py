"""The one place where errors become HTTP responses, in the Notifications API's shapes."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from chargewire.errors import (
    ChargewireError,
    Conflict,
    DatabaseUnavailable,
    NotFound,
    PermissionDenied,
    RateLimited,
    Unauthenticated,
    ValidationFailed,
)

logger = logging.getLogger(__name__)

_STATUS_BY_ERROR: tuple[tuple[type[ChargewireError], int], ...] = (
    (ValidationFailed, 422),
    (Unauthenticated, 401),
    (PermissionDenied, 403),
    (NotFound, 404),
    (Conflict, 409),
    (RateLimited, 429),
    (DatabaseUnavailable, 503),
)


class BadRequest(ChargewireError):
    """The request could not be read."""

    def __init__(self, message: str | None = None, status_code: int = 400) -> None:
        super().__init__(message)
        self.status_code = status_code


def error_response(error: ChargewireError) -> JSONResponse:
    """The JSON response for a known error."""
    if isinstance(error, BadRequest):
        return JSONResponse({"message": error.message}, status_code=error.status_code)
    status = next((code for kind, code in _STATUS_BY_ERROR if isinstance(error, kind)), 500)
    if status == 500:
        logger.error("unmapped error: %s", error.message)
        return JSONResponse({"message": "Server Error"}, status_code=500)
    body: dict[str, Any] = {"message": error.message}
    headers: dict[str, str] = {}
    if isinstance(error, ValidationFailed):
        body["errors"] = error.errors
    if isinstance(error, DatabaseUnavailable):
        headers = {"Retry-After": str(error.retry_after_s)}
    if isinstance(error, RateLimited):
        headers = {
            "X-RateLimit-Limit": str(error.limit),
            "X-RateLimit-Remaining": "0",
            "Retry-After": str(error.retry_after_s),
        }
    return JSONResponse(body, status_code=status, headers=headers)


def unexpected_error_response(method: str, path: str, error: BaseException) -> JSONResponse:
    """The 500 for an error nothing else answered, logged once with its traceback."""
    logger.exception("unexpected error on %s %s", method, path, exc_info=error)
    return JSONResponse({"message": "Server Error"}, status_code=500)


def field_name(location: Sequence[int | str]) -> str:
    """A request-validation location as a field path: ('body', 'kafka', 'brokers', 0) -> kafka.brokers.0."""
    parts = [str(part) for part in location[1:]] if location and location[0] in ("body", "query", "path") else []
    if not parts:
        parts = [str(part) for part in location[1:] or location]
    return ".".join(parts) or "(body)"


def _request_validation_failed(error: RequestValidationError) -> ValidationFailed:
    errors: dict[str, list[str]] = {}
    for item in error.errors():
        message = str(item.get("msg", "Invalid value."))
        if item.get("type") == "json_invalid":
            # FastAPI locates a JSON syntax error by character position; there is no field to name.
            errors.setdefault("(body)", []).append(f"The body is not valid JSON: {message}.")
            continue
        message = message[0].upper() + message[1:]
        errors.setdefault(field_name(item.get("loc", ())), []).append(message.rstrip(".") + ".")
    return ValidationFailed(errors)


def install_error_handlers(app: FastAPI) -> None:
    """Map chargewire errors, request validation, HTTP errors and anything unexpected to JSON responses."""

    async def on_chargewire_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ChargewireError)
        return error_response(exc)

    async def on_request_validation(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return error_response(_request_validation_failed(exc))

    async def on_http_exception(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        return JSONResponse({"message": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        return unexpected_error_response(request.method, request.url.path, exc)

    app.add_exception_handler(ChargewireError, on_chargewire_error)
    app.add_exception_handler(RequestValidationError, on_request_validation)
    app.add_exception_handler(StarletteHTTPException, on_http_exception)
    app.add_exception_handler(Exception, on_unexpected)
