"""Bearer API keys on the API listener: which merchant is calling.

Handlers call :func:`require_merchant`; a missing, malformed, unknown or revoked key is a 401
JSON error with ``WWW-Authenticate: Bearer``. Every handler then scopes its reads and writes to
that merchant, so another merchant's product is simply not found (404, never 403): a key cannot
even learn which ids exist elsewhere.
"""

from __future__ import annotations

from aiohttp import web

from ingest.context import SERVICES
from ingest.errors import ApiError
from verifier.merchants import ApiKeyStore, Merchant

_REALM = 'Bearer realm="catalog-verifier"'
# Per-request memo, so several helpers in one request authenticate once.
_MERCHANT_KEY = web.RequestKey("merchant", Merchant)


def _unauthorized(message: str, *, invalid: bool) -> ApiError:
    challenge = f'{_REALM}, error="invalid_token"' if invalid else _REALM
    return ApiError(401, message, headers={"WWW-Authenticate": challenge})


def bearer_token(request: web.Request) -> str | None:
    """The token of an ``Authorization: Bearer`` header, or None when there is none."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def require_merchant(request: web.Request) -> Merchant:
    """The merchant whose API key authorises this request; raises a 401 ApiError otherwise."""
    if _MERCHANT_KEY in request:
        return request[_MERCHANT_KEY]
    token = bearer_token(request)
    if token is None:
        raise _unauthorized("an API key is required: Authorization: Bearer <key>", invalid=False)
    services = request.app[SERVICES]
    merchant = await ApiKeyStore(services.db).authenticate(token)
    if merchant is None:
        raise _unauthorized("the API key is invalid or revoked", invalid=True)
    request[_MERCHANT_KEY] = merchant
    return merchant
