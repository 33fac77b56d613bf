"""A small HTTP/1.1 server on ``asyncio.Protocol``: keep-alive, pipelining, chunked bodies.

Why not Starlette on uvicorn, as the control plane uses: the model server's whole job is a
tight request loop, and on a 2-core machine the ASGI layers (scope dicts, receive/send
coroutines, middleware) cost more than the forward pass of a small model. This protocol
parses the request line and headers in one pass, reads a Content-Length or chunked body,
calls one ``async`` app function per request and writes the response in one ``write``. What
it does not do, on purpose: HTTP/2, upgrades, TLS (the server binds to loopback and sits
behind sageport's proxy). Bodies above ``max_body`` are answered 413 and the connection is
closed; malformed requests get 400 and a close.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import cast

LOG = logging.getLogger(__name__)
MAX_HEAD = 64 * 1024
_REASONS = {status.value: status.phrase for status in HTTPStatus}


@dataclass(slots=True)
class HttpRequest:
    """A parsed request; header names are lower-case (last value wins)."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes = b""


@dataclass(slots=True)
class HttpResponse:
    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


App = Callable[[HttpRequest], Awaitable[HttpResponse]]


class HttpError(Exception):
    """A request the protocol itself refuses; answered, then the connection closes."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Connections:
    """The open connections of one server, for a graceful stop."""

    def __init__(self) -> None:
        self.open: set[HttpProtocol] = set()

    async def drain(self, grace_s: float) -> None:
        """Close idle connections now, busy ones after their response, all by ``grace_s``."""
        for conn in list(self.open):
            conn.close_when_idle()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_s
        while self.open and loop.time() < deadline:
            await asyncio.sleep(0.05)
        for conn in list(self.open):
            conn.abort()


class HttpProtocol(asyncio.Protocol):
    """One client connection; requests on it are answered in order."""

    def __init__(self, app: App, max_body: int, connections: Connections) -> None:
        self._app = app
        self._max_body = max_body
        self._connections = connections
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._head: tuple[str, str, bool, dict[str, str], int] | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    # -- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport; they have its methods.
        self._transport = cast(asyncio.Transport, transport)
        self._connections.open.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._connections.open.discard(self)
        self._closing = True

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self._task is None:
            self._next()

    # -- lifecycle ---------------------------------------------------------------------------

    def close_when_idle(self) -> None:
        self._closing = True
        if self._task is None and self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    # -- requests ----------------------------------------------------------------------------

    def _next(self) -> None:
        if self._closing:
            return
        try:
            parsed = self._parse()
        except HttpError as exc:
            self._write(HttpResponse(exc.status, exc.message.encode()), keep_alive=False)
            return
        if parsed is not None:
            request, keep_alive = parsed
            self._task = asyncio.get_running_loop().create_task(self._answer(request, keep_alive))

    async def _answer(self, request: HttpRequest, keep_alive: bool) -> None:
        try:
            response = await self._app(request)
        except Exception:
            LOG.exception("unhandled error answering %s %s", request.method, request.path)
            response = HttpResponse(500, b"Internal server error")
        self._task = None
        self._write(response, keep_alive=keep_alive and not self._closing)
        if keep_alive and not self._closing and self._buffer:
            self._next()

    def _write(self, response: HttpResponse, *, keep_alive: bool) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        body = response.body
        lines = [
            f"HTTP/1.1 {response.status} {_REASONS.get(response.status, 'Unknown')}\r\n"
            f"Content-Type: {response.content_type}\r\nContent-Length: {len(body)}\r\n"
        ]
        for name, value in response.headers.items():
            lines.append(f"{name}: {value}\r\n")
        if not keep_alive:
            lines.append("Connection: close\r\n")
        lines.append("\r\n")
        head = "".join(lines).encode("latin-1")
        if len(body) < 65536:
            transport.write(head + body)
        else:
            transport.write(head)
            transport.write(body)
        if not keep_alive:
            self._closing = True
            transport.close()

    def _parse(self) -> tuple[HttpRequest, bool] | None:
        """The next complete request in the buffer, or None until more data arrives."""
        buf = self._buffer
        if self._head is None:
            while buf[:2] == b"\r\n":  # stray CRLF between requests (RFC 9112 §2.2)
                del buf[:2]
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEAD:
                    raise HttpError(431, "Request header fields too large")
                return None
            self._head = self._parse_head(bytes(buf[:end]))
            del buf[: end + 4]
        method, target, keep_alive, headers, length = self._head
        if length >= 0:
            if len(buf) < length:
                return None
            body = bytes(buf[:length])
            del buf[:length]
        else:
            chunked = self._parse_chunked()
            if chunked is None:
                return None
            body = chunked
        self._head = None
        return HttpRequest(method, target, headers, body), keep_alive

    def _parse_head(self, raw: bytes) -> tuple[str, str, bool, dict[str, str], int]:
        lines = raw.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise HttpError(400, "Malformed request line")
        method, target, version = parts
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                raise HttpError(400, "Malformed header line")
            headers[name.strip().lower()] = value.strip()
        connection = headers.get("connection", "").lower()
        keep_alive = "close" not in connection
        if version == "HTTP/1.0":
            keep_alive = "keep-alive" in connection
        if "chunked" in headers.get("transfer-encoding", "").lower():
            length = -1
        else:
            try:
                length = int(headers.get("content-length", "0"))
            except ValueError:
                raise HttpError(400, "Malformed Content-Length") from None
            if length < 0:
                raise HttpError(400, "Malformed Content-Length")
            if length > self._max_body:
                raise HttpError(413, _too_large(length, self._max_body))
        if headers.get("expect", "").lower() == "100-continue" and self._transport is not None:
            self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        return method, target, keep_alive, headers, length

    def _parse_chunked(self) -> bytes | None:
        buf = self._buffer
        pos = 0
        parts: list[bytes] = []
        total = 0
        while True:
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                return None
            try:
                size = int(bytes(buf[pos:eol]).split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise HttpError(400, "Malformed chunk size") from None
            if size == 0:
                end = buf.find(b"\r\n\r\n", eol) if buf[eol + 2 : eol + 4] != b"\r\n" else eol
                if end < 0:
                    return None
                del buf[: end + 4]
                return b"".join(parts)
            total += size
            if total > self._max_body:
                raise HttpError(413, _too_large(total, self._max_body))
            start = eol + 2
            if len(buf) < start + size + 2:
                return None
            parts.append(bytes(buf[start : start + size]))
            pos = start + size + 2


def _too_large(size: int, limit: int) -> str:
    return (
        f"Request body of {size} bytes is larger than the maximum payload of {limit} bytes "
        "(SAGEMAKER_MAX_PAYLOAD_IN_MB)"
    )
