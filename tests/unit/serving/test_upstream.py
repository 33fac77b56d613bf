"""The proxy's HTTP/1.1 client against a real loopback server that answers as scripted."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from sageport.serving.upstream import UpstreamError, UpstreamPool

Answer = Callable[[bytes, asyncio.StreamWriter], Awaitable[bool]]  # True: keep the connection


async def _serve(answer: Answer) -> tuple[asyncio.Server, int, list[bytes]]:
    """A server that reads each request (head + Content-Length body) and lets ``answer``
    reply; returns it, its port, and the requests it saw."""
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                request = head + await reader.readexactly(length)
                seen.append(request)
                if not await answer(request, writer):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, port, seen


def _run(coro: Awaitable[None]) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


def test_content_length_answers_reuse_one_connection() -> None:
    connections = 0

    async def answer(request: bytes, writer: asyncio.StreamWriter) -> bool:
        body = request.split(b"\r\n\r\n", 1)[1]
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/x-npy\r\n"
            b"X-Amzn-SageMaker-Custom-Attributes: a=1\r\n"
            + f"Content-Length: {len(body) + 1}\r\n\r\n".encode()
            + body
            + b"!"
        )
        return True

    async def main() -> None:
        nonlocal connections
        server, port, seen = await _serve(answer)
        pool = UpstreamPool()
        for i in range(5):
            body = f"payload {i}".encode() * (1 + 3000 * (i == 4))  # the last one is large
            resp = await pool.request(
                "127.0.0.1", port, "POST", "/invocations", {"accept": "x/y"}, body, 5.0
            )
            assert resp.status == 200
            assert resp.body == body + b"!"
            assert resp.headers["content-type"] == "application/x-npy"
            assert resp.headers["x-amzn-sagemaker-custom-attributes"] == "a=1"
        assert len(seen) == 5
        assert seen[0].startswith(b"POST /invocations HTTP/1.1\r\n")
        assert b"\r\naccept: x/y\r\n" in seen[0]
        assert len(pool._idle[("127.0.0.1", port)]) == 1  # one connection, kept
        await pool.close()
        server.close()
        await server.wait_closed()

    _run(main())


def test_chunked_answers_and_connection_close() -> None:
    async def answer(request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 500 Internal Server Error\r\nTransfer-Encoding: chunked\r\n\r\n")
        await writer.drain()
        for part in (b"model ", b"said ", b"no"):
            writer.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
            await writer.drain()
            await asyncio.sleep(0.01)  # the answer arrives in pieces
        writer.write(b"0\r\n\r\n")
        return b"close-me" not in request

    async def main() -> None:
        server, port, _ = await _serve(answer)
        pool = UpstreamPool()
        resp = await pool.request("127.0.0.1", port, "POST", "/invocations", {}, b"x", 5.0)
        assert (resp.status, resp.body) == (500, b"model said no")
        resp = await pool.request("127.0.0.1", port, "POST", "/i", {}, b"close-me", 5.0)
        assert resp.body == b"model said no"
        await pool.close()
        server.close()
        await server.wait_closed()

    _run(main())


def test_an_idle_connection_the_server_closed_is_replaced() -> None:
    async def answer(request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        return False  # answers as keep-alive, then closes anyway (a restarted server)

    async def main() -> None:
        server, port, seen = await _serve(answer)
        pool = UpstreamPool()
        for _ in range(3):
            resp = await pool.request("127.0.0.1", port, "GET", "/ping", {}, b"", 5.0)
            assert resp.body == b"ok"
            await asyncio.sleep(0.05)
        assert len(seen) == 3
        await pool.close()
        server.close()
        await server.wait_closed()

    _run(main())


def test_a_hung_model_server_times_out_and_a_dead_one_is_an_upstream_error() -> None:
    async def hang(request: bytes, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(5)
        return False

    async def garbage(request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"SPEAKS NO HTTP\r\n\r\n")
        return False

    async def main() -> None:
        pool = UpstreamPool()
        server, port, _ = await _serve(hang)
        with pytest.raises(TimeoutError):
            await pool.request("127.0.0.1", port, "POST", "/invocations", {}, b"x", 0.2)
        assert not pool._idle[("127.0.0.1", port)]  # the timed-out connection is not kept
        server.close()
        bad, bad_port, _ = await _serve(garbage)
        with pytest.raises(UpstreamError, match="broke the connection"):
            await pool.request("127.0.0.1", bad_port, "POST", "/invocations", {}, b"x", 5.0)
        bad.close()
        await bad.wait_closed()
        with pytest.raises(UpstreamError, match="cannot connect"):
            await pool.request("127.0.0.1", bad_port, "GET", "/ping", {}, b"", 5.0)
        await pool.close()

    _run(main())
