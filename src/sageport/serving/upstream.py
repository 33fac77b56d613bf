"""A small keep-alive HTTP/1.1 client for the loopback hop to model servers.

InvokeEndpoint's overhead budget is a fraction of a millisecond, so the proxy keeps a pool
of open connections per model server and speaks just enough HTTP/1.1 (Content-Length or
chunked responses) to forward a request; general-purpose clients cost several times more
per request on this path.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass


class UpstreamError(Exception):
    """The model server could not be reached or broke the connection."""


@dataclass(frozen=True)
class UpstreamResponse:
    status: int
    headers: dict[str, str]
    body: bytes


class _Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer


class UpstreamPool:
    def __init__(self, max_idle_per_host: int = 64) -> None:
        self._idle: dict[tuple[str, int], list[_Conn]] = {}
        self._max_idle = max_idle_per_host

    async def _connect(self, host: str, port: int) -> _Conn:
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError as exc:
            raise UpstreamError(f"cannot connect to {host}:{port}: {exc}") from exc
        return _Conn(reader, writer)

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
        idle = self._idle.setdefault(key, [])
        reused = bool(idle)
        conn = idle.pop() if idle else await self._connect(host, port)
        head = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", f"Content-Length: {len(body)}"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        payload = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
        try:
            conn.writer.write(payload)
            response, keep = await asyncio.wait_for(self._read(conn.reader), timeout)
        except TimeoutError:
            conn.writer.close()
            raise
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            conn.writer.close()
            if reused:  # a pooled connection the server had closed: one fresh try
                return await self.request(host, port, method, path, headers, body, timeout)
            raise UpstreamError(
                f"model server at {host}:{port} broke the connection: {exc}"
            ) from exc
        if keep and len(idle) < self._max_idle:
            idle.append(conn)
        else:
            conn.writer.close()
        return response

    @staticmethod
    async def _read(reader: asyncio.StreamReader) -> tuple[UpstreamResponse, bool]:
        raw = await reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        status = int(parts[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if ":" in line:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await reader.readuntil(b"\r\n")
                    break
                chunks.append(await reader.readexactly(size))
                await reader.readexactly(2)
            body = b"".join(chunks)
        else:
            body = await reader.readexactly(int(headers.get("content-length", "0")))
        keep = headers.get("connection", "").lower() != "close" and parts[0] == "HTTP/1.1"
        return UpstreamResponse(status, headers, body), keep

    async def close(self) -> None:
        for conns in self._idle.values():
            for c in conns:
                c.writer.close()
        self._idle.clear()
