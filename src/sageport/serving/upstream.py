"""A small keep-alive HTTP/1.1 client for the loopback hop to model servers.

InvokeEndpoint's overhead budget is a fraction of a millisecond, so the proxy keeps a pool
of open connections per model server and speaks just enough HTTP/1.1 (Content-Length or
chunked responses) to forward a request; general-purpose clients cost several times more
per request on this path. Each connection is an ``asyncio.Protocol``: the request goes out
in one ``write``, the response is parsed as it arrives and settles one future, and the
timeout is one timer (no stream reader, no ``wait_for`` task per request).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

MAX_HEAD = 64 * 1024


class UpstreamError(Exception):
    """The model server could not be reached or broke the connection."""


@dataclass(frozen=True)
class UpstreamResponse:
    status: int
    headers: dict[str, str]
    body: bytes


class _Broken(Exception):
    """The connection ended or sent something that is not an HTTP/1.1 response."""


class _Conn(asyncio.Protocol):
    """One connection to a model server; one request at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._buf = bytearray()
        self._waiter: asyncio.Future[tuple[UpstreamResponse, bool]] | None = None
        self._head: tuple[int, dict[str, str], bool] | None = None  # status, headers, keep
        self._start = 0  # where the body starts in _buf (after the head)
        self._length = -1  # Content-Length; -1 while chunked
        self._chunks: list[bytes] = []

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            self.close()  # bytes nobody asked for: the connection cannot be trusted
            return
        self._buf += data
        try:
            done = self._parse()
        except (ValueError, IndexError, _Broken) as exc:
            self.close()
            waiter.set_exception(_Broken(str(exc) or type(exc).__name__))
            return
        if done is not None:
            self._waiter = None
            waiter.set_result(done)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(_Broken(str(exc) if exc else "connection closed"))

    # -- requests -------------------------------------------------------------------------

    def send(self, payload: bytes) -> asyncio.Future[tuple[UpstreamResponse, bool]]:
        assert self.transport is not None
        self._buf.clear()
        self._head = None
        self._start = 0
        self._length = -1
        self._chunks = []
        self._waiter = waiter = self.loop.create_future()
        self.transport.write(payload)
        return waiter

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _parse(self) -> tuple[UpstreamResponse, bool] | None:
        buf = self._buf
        if self._head is None:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEAD:
                    raise _Broken("response head too large")
                return None
            self._head = self._parse_head(bytes(buf[:end]).decode("latin-1"))
            self._start = end + 4
        status, headers, keep = self._head
        if self._length >= 0:
            stop = self._start + self._length
            if len(buf) < stop:
                return None
            return UpstreamResponse(status, headers, bytes(buf[self._start : stop])), keep
        # chunked: take every complete chunk from _start on
        while True:
            line_end = buf.find(b"\r\n", self._start)
            if line_end < 0:
                return None
            size = int(bytes(buf[self._start : line_end]).split(b";")[0], 16)
            if size == 0:
                if buf.find(b"\r\n", line_end + 2) < 0:
                    return None  # the (empty) trailer has not arrived yet
                return UpstreamResponse(status, headers, b"".join(self._chunks)), keep
            data_start = line_end + 2
            if len(buf) < data_start + size + 2:
                return None
            self._chunks.append(bytes(buf[data_start : data_start + size]))
            self._start = data_start + size + 2

    def _parse_head(self, head: str) -> tuple[int, dict[str, str], bool]:
        lines = head.split("\r\n")
        parts = lines[0].split(" ", 2)
        status = int(parts[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if ":" in line:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            self._length = -1
        else:
            self._length = int(headers.get("content-length", "0"))
            if self._length < 0:
                raise _Broken("negative Content-Length")
        keep = headers.get("connection", "").lower() != "close" and parts[0] == "HTTP/1.1"
        return status, headers, keep


class UpstreamPool:
    def __init__(self, max_idle_per_host: int = 64) -> None:
        self._idle: dict[tuple[str, int], list[_Conn]] = {}
        self._max_idle = max_idle_per_host

    async def _connect(self, host: str, port: int) -> _Conn:
        loop = asyncio.get_running_loop()
        try:
            _, conn = await loop.create_connection(lambda: _Conn(loop), host, port)
        except OSError as exc:
            raise UpstreamError(f"cannot connect to {host}:{port}: {exc}") from exc
        return conn

    async def request(
        self,
        host: str,
        port: int,
        method: str,
        path: str,
        headers: Mapping[str, str],
        body: bytes,
        timeout: float,
    ) -> UpstreamResponse:
        key = (host, port)
        idle = self._idle.get(key)
        if idle is None:
            idle = self._idle[key] = []
        conn = None
        while idle:
            conn = idle.pop()
            if not conn.closed:
                break
            conn = None
        reused = conn is not None
        if conn is None:
            conn = await self._connect(host, port)
        head = f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Length: {len(body)}\r\n"
        head += "".join([f"{k}: {v}\r\n" for k, v in headers.items()])
        payload = (head + "\r\n").encode("latin-1") + body
        # the connection's loop is the running one (asking for it is a getpid() each time)
        waiter = conn.send(payload)
        timer = conn.loop.call_later(timeout, _expire, waiter)
        try:
            response, keep = await waiter
        except TimeoutError:
            conn.close()
            raise
        except _Broken as exc:
            conn.close()
            if reused:  # a pooled connection the server had closed: one fresh try
                return await self.request(host, port, method, path, headers, body, timeout)
            raise UpstreamError(
                f"model server at {host}:{port} broke the connection: {exc}"
            ) from None
        except BaseException:  # cancelled mid-request: the connection is in an unknown state
            conn.close()
            raise
        finally:
            timer.cancel()
        if keep and not conn.closed and len(idle) < self._max_idle:
            idle.append(conn)
        else:
            conn.close()
        return response

    async def close(self) -> None:
        for conns in self._idle.values():
            for c in conns:
                c.close()
        self._idle.clear()


def _expire(waiter: asyncio.Future[tuple[UpstreamResponse, bool]]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())
