"""Every error leaves the API as ``{"error": {"code", "message", "details"}}``.

A browser asking for a website page (``Accept: text/html``, a path outside ``/api/``) gets
the same status, code and message as an HTML page instead; API clients keep JSON.

HTTP statuses for Podium's error tree (:mod:`tuner.errors`) are decided here and nowhere
else; unexpected exceptions become a bare 500 without a stack trace.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from tuner.errors import InputError, PodiumError, SubmissionRejected, one_line

log = logging.getLogger("leaderboard")

_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
          405: "method_not_allowed", 409: "conflict", 413: "payload_too_large",
          415: "unsupported_media_type", 422: "validation_error", 429: "rate_limited",
          500: "internal_error", 503: "unavailable", 507: "insufficient_storage"}

# SQLite's messages and PostgreSQL's SQLSTATEs for a database that cannot take a write now.
_SQLITE_FAULTS = (("database is locked", 503, "database_busy"),
                  ("database table is locked", 503, "database_busy"),
                  ("database or disk is full", 507, "insufficient_storage"),
                  ("readonly database", 503, "database_read_only"),
                  ("unable to open database file", 503, "database_unavailable"),
                  ("disk i/o error", 503, "database_unavailable"))
_PG_FAULTS = {"53100": (507, "insufficient_storage"), "25006": (503, "database_read_only"),
              "55P03": (503, "database_busy"), "40001": (503, "database_busy"),
              "40P01": (503, "database_busy"), "57014": (503, "database_busy")}
_FAULT_MESSAGES = {
    "database_busy": "the database is busy (another writer holds its lock); retry shortly",
    "insufficient_storage": "the database is full; nothing was written",
    "database_read_only": "the database is read-only; nothing was written",
    "database_unavailable": "the database is unavailable; nothing was written"}


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


def wants_html(request: Request) -> bool:
    """A browser on a website page: HTML accepted, not an API path."""
    return (not request.url.path.startswith("/api/")
            and "text/html" in request.headers.get("accept", ""))


def respond(request: Request, status: int, message: str, *, code: str | None = None,
            details: list[Any] | None = None, headers: dict[str, str] | None = None,
            **extra: Any) -> Response:
    """The error as JSON, or as an HTML page for a browser (:func:`wants_html`)."""
    if not wants_html(request):
        return error_response(status, message, code=code, details=details, headers=headers,
                              **extra)
    from leaderboard.templating import TEMPLATES

    body = error_body(status, message, code=code, details=details)["error"]
    return TEMPLATES.TemplateResponse(request, "error.html", {"status": status, **body},
                                      status_code=status, headers=headers)


def status_for(error: PodiumError) -> int:
    if isinstance(error, SubmissionRejected):
        return 422
    if isinstance(error, InputError):
        return 400
    return 500


def database_fault(error: DBAPIError) -> ApiError | None:
    """A clear 503/507 for a locked, full, read-only or unreachable database, else None.

    The failed statement's transaction is rolled back by the session that ran it, so such a
    request leaves no row behind; a client may retry it (with the same Idempotency-Key).
    """
    status = code = None
    sqlstate = getattr(error.orig, "sqlstate", None)
    if sqlstate in _PG_FAULTS:
        status, code = _PG_FAULTS[sqlstate]
    elif sqlstate is not None and sqlstate.startswith(("08", "53", "57P")):
        status, code = 503, "database_unavailable"
    else:
        text = str(error.orig).lower()
        for needle, fault_status, fault_code in _SQLITE_FAULTS:
            if needle in text:
                status, code = fault_status, fault_code
                break
        else:
            if isinstance(error, OperationalError) and sqlstate is None and \
                    error.connection_invalidated:
                status, code = 503, "database_unavailable"
    if status is None or code is None:
        return None
    return ApiError(status, _FAULT_MESSAGES[code], code=code, headers={"Retry-After": "1"})


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    details = []
    for err in exc.errors():
        loc = [str(part) for part in err.get("loc", ())]
        details.append({"loc": loc, "message": str(err.get("msg", "invalid")),
                        "type": str(err.get("type", "value_error"))})
    return details


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        return respond(request, exc.status, exc.message, code=exc.code, details=exc.details,
                       headers=exc.headers, **exc.extra)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        message = exc.detail if isinstance(exc.detail, str) else _CODES.get(exc.status_code,
                                                                            "error")
        return respond(request, exc.status_code, message, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        details = _validation_details(exc)
        first = details[0] if details else {"loc": [], "message": "invalid request"}
        where = ".".join(p for p in first["loc"] if p != "body") or "request"
        return respond(request, 422, f"invalid request: {where}: {first['message']}",
                       details=details)

    @app.exception_handler(PodiumError)
    async def _podium_error(request: Request, exc: PodiumError) -> Response:
        reasons = getattr(exc, "reasons", [])
        return respond(request, status_for(exc), one_line(exc), details=reasons)

    @app.exception_handler(DBAPIError)
    async def _database_error(_: Request, exc: DBAPIError) -> JSONResponse:
        fault = database_fault(exc)
        if fault is None:
            log.exception("unhandled database error", exc_info=exc)
            return error_response(500, "internal server error")
        log.warning("database fault (%s): %s", fault.code, one_line(exc.orig or exc))
        return error_response(fault.status, fault.message, code=fault.code,
                              headers=fault.headers)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return error_response(500, "internal server error")
