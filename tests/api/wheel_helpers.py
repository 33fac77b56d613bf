"""Pure-Python wheels built in memory (no build backend, no index), for requirements.txt tests."""

from __future__ import annotations

import base64
import hashlib
import io
import zipfile


def tiny_wheel(
    name: str = "sageport_tiny", version: str = "0.1", value: str = "hi", source: str | None = None
) -> tuple[str, bytes]:
    """(file name, bytes) of a wheel of the package ``name`` whose ``__init__.py`` is
    ``source``, or ``VALUE = value`` when no source is given."""
    dist = f"{name}-{version}.dist-info"
    init = source if source is not None else f"VALUE = {value!r}\n"
    files = {
        f"{name}/__init__.py": init.encode(),
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: sageport-tests\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n",
    }
    record = [f"{path},sha256={_digest(data)},{len(data)}" for path, data in files.items()] + [
        f"{dist}/RECORD,,"
    ]
    files[f"{dist}/RECORD"] = ("\n".join(record) + "\n").encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for path, data in files.items():
            archive.writestr(path, data)
    return f"{name}-{version}-py3-none-any.whl", buf.getvalue()


def _digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
