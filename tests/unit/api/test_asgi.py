"""The raw ASGI pieces of the InvokeEndpoint path: the request, its body, the answer."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from sageport.api.asgi import Disconnected, read_body, send_answer, signed_request
from sageport.errors import PayloadTooLarge


def _receiver(messages: list[dict[str, Any]]) -> Any:
    queue = list(messages)

    async def receive() -> dict[str, Any]:
        return queue.pop(0) if queue else {"type": "http.disconnect"}

    return receive


def _body(chunks: list[bytes]) -> list[dict[str, Any]]:
    return [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
        for i, c in enumerate(chunks)
    ]


def test_the_request_as_signed_comes_from_the_scope() -> None:
    scope = {
        "method": "POST",
        "path": "/endpoints/a b/invocations",
        "raw_path": b"/endpoints/a%20b/invocations",
        "query_string": b"x=1",
        "headers": [(b"Host", b"h:1"), (b"x-amz-date", b"20260101T000000Z")],
    }
    req = signed_request(scope)
    assert (req.method, req.raw_path, req.raw_query, req.host) == (
        "POST",
        "/endpoints/a%20b/invocations",
        "x=1",
        "h:1",
    )
    assert req.headers == {"host": "h:1", "x-amz-date": "20260101T000000Z"}


def test_bodies_are_read_whole_limited_and_drained() -> None:
    async def main() -> None:
        assert await read_body(_receiver(_body([b"abc"])), 10) == b"abc"
        assert await read_body(_receiver(_body([b"ab", b"", b"cd"])), 10) == b"abcd"
        assert await read_body(_receiver(_body([b"x" * 10])), 10) == b"x" * 10
        rest = _body([b"x" * 6, b"x" * 6, b"x" * 6])
        receive = _receiver(rest)
        with pytest.raises(PayloadTooLarge):
            await read_body(receive, 10)
        assert await receive() == {"type": "http.disconnect"}  # drained to the end
        with pytest.raises(Disconnected):
            await read_body(_receiver([{"type": "http.disconnect"}]), 10)
        with pytest.raises(Disconnected):
            await read_body(_receiver(_body([b"a", b"b"])[:1]), 10)

    asyncio.run(main())


class _Transport:
    def __init__(self) -> None:
        self.events: list[Any] = []

    def write(self, data: bytes) -> None:
        self.events.append(data)

    def close(self) -> None:
        self.events.append("close")


class _Cycle:
    """What send_answer relies on in uvicorn's RequestResponseCycle: ``send`` writes to
    ``self.transport``, the head at the start message, the body at the body message."""

    def __init__(self, close_after: bool) -> None:
        self.transport = _Transport()
        self.real = self.transport
        self.close_after = close_after

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            head = b"".join(k + b": " + v + b"\r\n" for k, v in message["headers"])
            self.transport.write(b"HEAD " + head)
        else:
            self.transport.write(message["body"])
            if self.close_after:
                self.transport.close()


def test_the_answer_goes_out_in_one_write_and_in_order() -> None:
    async def main() -> None:
        cycle = _Cycle(close_after=False)
        await send_answer(cycle.send, {"Content-Type": "text/csv", "X-A": "1"}, b"1,2")
        assert cycle.real.events == [
            b"HEAD content-type: text/csv\r\nx-a: 1\r\ncontent-length: 3\r\n1,2"
        ]
        assert cycle.transport is cycle.real  # given back
        closing = _Cycle(close_after=True)
        await send_answer(closing.send, {}, b"x")
        assert closing.real.events == [b"HEAD content-length: 1\r\nx", "close"]

    asyncio.run(main())


def test_any_other_send_gets_two_messages() -> None:
    messages: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    asyncio.run(send_answer(send, {"content-type": "application/json"}, b"{}"))
    assert messages == [
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"2")],
        },
        {"type": "http.response.body", "body": b"{}"},
    ]
