"""ASGI layers that run before any route: the bearer token, then the request body's size.

Both answer in the API's error format, `{"detail": "<field>: <constraint>"}`, and work on the
raw ASGI messages, so a refused request is never parsed. A refused body is not read on: uvicorn
discards the rest of it without keeping it.
"""

from __future__ import annotations

import hmac
from collections.abc import Collection

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["BearerAuth", "BodyLimit"]


def _header(scope: Scope, name: bytes) -> bytes | None:
    return next((value for key, value in scope.get("headers", ()) if key.lower() == name), None)


class BearerAuth:
    """Requires `Authorization: Bearer <token>` on every HTTP route except `open_paths`
    (401 with `WWW-Authenticate: Bearer` otherwise); compared in constant time."""

    def __init__(self, app: ASGIApp, token: str, open_paths: Collection[str] = ("/health",)):
        self.app = app
        self._token = token.encode()
        self._open = frozenset(open_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in self._open and not self._authorized(scope):
            response = JSONResponse(
                {"detail": "authorization: this server needs a bearer token (Authorization: Bearer <token>)"},
                status_code=401, headers={"WWW-Authenticate": "Bearer"})
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _authorized(self, scope: Scope) -> bool:
        scheme, _, credentials = (_header(scope, b"authorization") or b"").partition(b" ")
        # compare_digest takes as long for any wrong token of the same length: no timing oracle.
        return scheme.lower() == b"bearer" and hmac.compare_digest(credentials.strip(), self._token)


DRAIN_BYTES = 8 * 1024 * 1024  # the most of a refused body read (and dropped) so the client gets its 413


async def _drain(receive: Receive, limit: int) -> None:
    """Receives and drops request body chunks until the body ends, the client leaves or `limit` bytes."""
    size = 0
    while size <= limit:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            return
        size += len(message.get("body", b""))


class BodyLimit:
    """Refuses (413) a request whose body is over `max_bytes`: by its Content-Length header
    before reading anything, else once the bytes received pass the limit (a chunked body).

    The body is read here and handed on whole, so the app never sees more than `max_bytes`.
    """

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and declared.strip().isdigit():
            digits = declared.strip().lstrip(b"0") or b"0"
            # More digits than the limit has can only be larger (and int() of a huge one is slow).
            if len(digits) > len(str(self.max_bytes)) or int(digits) > self.max_bytes:
                got = digits.decode() if len(digits) <= 20 else f"a {len(digits)}-digit number"
                await self._refuse(scope, receive, send, f"Content-Length {got}")
                return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: nothing to answer
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(scope, receive, send, f"more than {self.max_bytes} bytes")
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body, delivered = b"".join(chunks), False

        async def replay() -> Message:
            nonlocal delivered
            if delivered:  # after the body: a disconnect, as the server reports it
                return await receive()
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, got: str) -> None:
        # Read (and drop) the rest of a body of up to DRAIN_BYTES first: a server that answers
        # while the client is still sending and then closes makes the client's kernel see a reset
        # instead of the 413. Beyond that the connection is simply closed.
        await _drain(receive, DRAIN_BYTES)
        response = JSONResponse(
            {"detail": f"body: must be at most {self.max_bytes} bytes on this server (--max-body-bytes), got {got}"},
            status_code=413)
        await response(scope, receive, send)
