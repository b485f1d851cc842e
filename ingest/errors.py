"""JSON errors for every failure at the HTTP edge.

Handlers raise :class:`ApiError` (or let domain exceptions through); the middleware turns every
failure, including aiohttp's own 404/405/413, into
``{"error": {"code", "message", "details"}}`` with the right status. Nothing reaches a client as
an HTML page, and bad input never becomes a 500.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import asyncpg
import orjson
import structlog
from aiohttp import web

from verifier.exceptions import Conflict, DatabaseError, InvalidInput, NotFound

log = structlog.get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Failures of the database connection, not of the request: 503, the client may retry.
_UNAVAILABLE = (
    DatabaseError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.InterfaceError,
    ConnectionError,
    TimeoutError,
)

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    411: "length_required",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "too_many_requests",
    500: "internal_error",
    503: "unavailable",
}


class ApiError(Exception):
    """An HTTP error with a JSON body; raised by handlers."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        details: Sequence[Any] = (),
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or _CODES.get(status, "error")
        self.message = message
        self.details = list(details)
        self.headers = headers or {}


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """A JSON response serialised with orjson."""
    return web.Response(
        body=orjson.dumps(data), status=status, content_type="application/json", headers=headers
    )


def error_response(error: ApiError) -> web.Response:
    """The JSON body of an ApiError."""
    body = {"error": {"code": error.code, "message": error.message, "details": error.details}}
    return json_response(body, status=error.status, headers=error.headers)


def _from_http_exception(exc: web.HTTPException) -> ApiError:
    allowed = ", ".join(sorted(getattr(exc, "allowed_methods", ())))
    messages = {
        404: "no such resource",
        405: f"method not allowed; allowed: {allowed}",
        413: "request body too large",
    }
    headers = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
    message = messages.get(exc.status) or exc.reason
    return ApiError(exc.status, message, headers=headers)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Translate every exception into a JSON error response."""
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc)
    except NotFound as exc:
        return error_response(ApiError(404, str(exc)))
    except Conflict as exc:
        return error_response(ApiError(409, str(exc)))
    except InvalidInput as exc:
        return error_response(ApiError(422, str(exc), details=exc.details))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(_from_http_exception(exc))
    except _UNAVAILABLE as exc:
        log.warning("http.database_unavailable", path=request.path, error=str(exc))
        return error_response(
            ApiError(503, "the database is unavailable; retry later", headers={"Retry-After": "5"})
        )
    except Exception:
        log.exception("http.unhandled_error", path=request.path, method=request.method)
        return error_response(ApiError(500, "internal error"))
