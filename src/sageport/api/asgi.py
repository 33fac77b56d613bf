"""Raw ASGI pieces for the InvokeEndpoint hot path, and the request as the verifier sees it.

An InvokeEndpoint passes through sageport in a few hundred microseconds of the machine's CPU,
and on a 2-core machine the client, sageport and the model server share it: Starlette's
middleware, routing and ``Request``/``Response`` objects cost as much as the signature check.
So the app answers ``POST /endpoints/<name>/invocations`` from the ASGI scope directly: the
headers are read once (into the dict the verifier needs anyway), the body is taken from
``receive`` and the answer goes out in one write. Every other request still goes through
Starlette's routing, and error answers are still the runtime protocol's Starlette responses.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.types import Receive, Scope, Send

from sageport.api.auth import SignedRequest
from sageport.errors import PayloadTooLarge

__all__ = ["Receive", "Scope", "Send"]

#: past the limit the rest of the body is read (and dropped) up to this, then we stop
DRAIN_LIMIT = 64 * 1024 * 1024


class Disconnected(Exception):
    """The client went away before its body arrived: there is nobody to answer."""


def signed_request(scope: Scope) -> SignedRequest:
    """The request from its ASGI scope: raw path and query, headers by lower-case name (the
    last of repeated headers wins, and their names are kept for ``api.confine``)."""
    raw_path = scope.get("raw_path") or scope["path"].encode()
    pairs = scope["headers"]
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in pairs}
    repeated: frozenset[str] = frozenset()
    if len(headers) != len(pairs):
        seen: set[str] = set()
        twice: set[str] = set()
        for k, _ in pairs:
            name = k.decode("latin-1").lower()
            (twice if name in seen else seen).add(name)
        repeated = frozenset(twice)
    return SignedRequest(
        method=scope["method"],
        raw_path=raw_path.decode("latin-1").split("?", 1)[0],
        raw_query=scope.get("query_string", b"").decode("latin-1"),
        headers=headers,
        host=headers.get("host", ""),
        repeated=repeated,
    )


async def read_body(receive: Receive, limit: int) -> bytes:
    """The whole body; PayloadTooLarge past ``limit`` (once the rest is drained, up to a
    bound, so the client reads our error rather than a reset connection)."""
    message = await receive()
    if message["type"] != "http.request":
        raise Disconnected
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False) and len(body) <= limit:
        return body  # the usual case: one message
    chunks = [body]
    size = len(body)
    while message.get("more_body", False) and size <= limit:
        message = await receive()
        if message["type"] != "http.request":
            raise Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        chunks.append(chunk)
    if size > limit:
        while message.get("more_body", False) and size <= DRAIN_LIMIT:
            message = await receive()
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
        raise PayloadTooLarge(f"Request body exceeds the limit of {limit} bytes.")
    return b"".join(chunks)


async def send_answer(send: Send, headers: Mapping[str, str], body: bytes) -> None:
    """A 200 with ``headers`` as given (names lower-cased, values untouched) and a
    Content-Length: what Starlette's ``Response(body, headers=headers)`` sends.

    uvicorn writes the head at ``http.response.start`` and the body at
    ``http.response.body``: two syscalls and two TCP segments, the client woken for each.
    Where ``send`` is a uvicorn cycle's (it has the connection's ``transport``), the two
    writes are held and go out as one (:class:`_OneWrite`); anywhere else, as they come.
    """
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    raw.append((b"content-length", str(len(body)).encode("latin-1")))
    cycle = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None or not callable(getattr(transport, "write", None)):
        await send({"type": "http.response.start", "status": 200, "headers": raw})
        await send({"type": "http.response.body", "body": body})
        return
    held = _OneWrite(transport)
    cycle.transport = held  # type: ignore[union-attr]
    try:
        await send({"type": "http.response.start", "status": 200, "headers": raw})
        await send({"type": "http.response.body", "body": body})
    finally:
        cycle.transport = transport  # type: ignore[union-attr]
        held.flush()


class _OneWrite:
    """Stands in for a transport while one answer is sent: ``write`` calls are held and
    joined; anything else asked of it (close, buffer sizes, ...) first flushes what is held,
    so the bytes reach the real transport in the order they were written."""

    def __init__(self, transport: object) -> None:
        self._transport = transport
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> None:
        self._parts.append(data)

    def flush(self) -> None:
        if self._parts:
            data = self._parts[0] if len(self._parts) == 1 else b"".join(self._parts)
            self._parts = []
            self._transport.write(data)  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> object:
        self.flush()
        return getattr(self._transport, name)
