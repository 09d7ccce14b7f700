"""Every error leaves the API as ``{"error": {"code", "message", "details"}}``.

HTTP statuses for Podium's error tree (:mod:`tuner.errors`) are decided here and nowhere
else; unexpected exceptions become a bare 500 without a stack trace.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from tuner.errors import InputError, PodiumError, SubmissionRejected, one_line

log = logging.getLogger("leaderboard")

_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
          405: "method_not_allowed", 409: "conflict", 413: "payload_too_large",
          415: "unsupported_media_type", 422: "validation_error", 429: "rate_limited",
          500: "internal_error", 503: "unavailable"}


class ApiError(Exception):
    """An error with an HTTP status, a stable code and a one-line message."""

    def __init__(self, status: int, message: str, *, code: str | None = None,
                 details: list[Any] | None = None, headers: dict[str, str] | None = None,
                 extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or _CODES.get(status, "error")
        self.message = message
        self.details = list(details or [])
        self.headers = headers
        self.extra = dict(extra or {})


def error_body(status: int, message: str, *, code: str | None = None,
               details: list[Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code or _CODES.get(status, "error"), "message": message,
                      "details": list(details or []), **extra}}


def error_response(status: int, message: str, *, code: str | None = None,
                   details: list[Any] | None = None, headers: dict[str, str] | None = None,
                   **extra: Any) -> JSONResponse:
    return JSONResponse(error_body(status, message, code=code, details=details, **extra),
                        status_code=status, headers=headers)


def status_for(error: PodiumError) -> int:
    if isinstance(error, SubmissionRejected):
        return 422
    if isinstance(error, InputError):
        return 400
    return 500


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    details = []
    for err in exc.errors():
        loc = [str(part) for part in err.get("loc", ())]
        details.append({"loc": loc, "message": str(err.get("msg", "invalid")),
                        "type": str(err.get("type", "value_error"))})
    return details


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.message, code=exc.code, details=exc.details,
                              headers=exc.headers, **exc.extra)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else _CODES.get(exc.status_code,
                                                                            "error")
        return error_response(exc.status_code, message, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = _validation_details(exc)
        first = details[0] if details else {"loc": [], "message": "invalid request"}
        where = ".".join(p for p in first["loc"] if p != "body") or "request"
        return error_response(422, f"invalid request: {where}: {first['message']}",
                              details=details)

    @app.exception_handler(PodiumError)
    async def _podium_error(_: Request, exc: PodiumError) -> JSONResponse:
        reasons = getattr(exc, "reasons", [])
        return error_response(status_for(exc), one_line(exc), details=reasons)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return error_response(500, "internal server error")
