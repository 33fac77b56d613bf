"""The least an S3 server can do: the floor that ``bench/control_plane.py`` measures us against.

    python bench/http_floor.py FILE        # prints the port it listens on, then serves

A raw asyncio HTTP/1.1 server on loopback, no framework and no checks. Any PUT is read and
thrown away (``100 Continue`` first, as botocore asks for it), and answered ``200`` with an
ETag; any GET is answered with FILE, sent with ``loop.sendfile`` (zero-copy), with the file's
``x-amz-checksum-crc32`` when the client asks for checksums, as S3 and sageport do, so the
client does the same checking work it does against them. Whatever time boto3 takes against this
server is the client's own (signing, SHA-256, CRC32, the socket): no S3 server can beat it.
"""

from __future__ import annotations

import asyncio
import base64
import os
import sys
import zlib

MiB = 1024 * 1024


def crc32_b64(path: str) -> str:
    crc = 0
    with open(path, "rb") as fh:
        while block := fh.read(8 * MiB):
            crc = zlib.crc32(block, crc)
    return base64.b64encode(crc.to_bytes(4, "big")).decode()


def make_handler(path: str) -> object:
    size = os.path.getsize(path)
    crc = crc32_b64(path)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
                method = head[0].split(" ", 1)[0]
                headers = {}
                for line in head[1:]:
                    name, sep, value = line.partition(":")
                    if sep:
                        headers[name.strip().lower()] = value.strip()
                if method == "PUT":
                    if headers.get("expect", "").lower() == "100-continue":
                        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                    left = int(headers.get("content-length", "0"))
                    while left:
                        got = await reader.read(min(left, 4 * MiB))
                        if not got:
                            raise ConnectionResetError
                        left -= len(got)
                    writer.write(b'HTTP/1.1 200 OK\r\nETag: "floor"\r\nContent-Length: 0\r\n\r\n')
                else:
                    extra = (
                        f"x-amz-checksum-crc32: {crc}\r\n"
                        if "x-amz-checksum-mode" in headers
                        else ""
                    )
                    head_out = f'HTTP/1.1 200 OK\r\nETag: "floor"\r\n{extra}Content-Length: {size}'
                    writer.write(head_out.encode() + b"\r\n\r\n")
                    with open(path, "rb") as fh:
                        await asyncio.get_running_loop().sendfile(writer.transport, fh)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    return handle


async def serve(path: str) -> None:
    server = await asyncio.start_server(make_handler(path), "127.0.0.1", 0, limit=4 * MiB)  # type: ignore[arg-type]
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1]))
