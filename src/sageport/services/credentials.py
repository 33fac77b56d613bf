"""The access keys this server accepts, kept in the data folder (mode 0600).

The first start writes one random key pair; ``sageport env`` prints it. More pairs can be
added to the file by hand. These are the server user's own keys: no job ever gets one (each
job gets a key of its own, ``services.keys``). :class:`StaticKeys` is the file's keys as a
:class:`~sageport.domain.keys.KeyLookup`.
"""

from __future__ import annotations

import json
import os
import secrets
import string
from collections.abc import Iterable
from pathlib import Path

from sageport.domain.keys import KeyPair

__all__ = ["KeyPair", "StaticKeys", "load_or_create"]


class StaticKeys:
    """A fixed set of key pairs (``credentials.json``, or a test's), looked up by id."""

    def __init__(self, keys: Iterable[KeyPair]) -> None:
        self._keys = {k.access_key_id: k for k in keys}

    def get(self, access_key_id: str) -> KeyPair | None:
        return self._keys.get(access_key_id)

    def ids(self) -> frozenset[str]:
        return frozenset(self._keys)


def _new_pair() -> KeyPair:
    alphabet = string.ascii_uppercase + string.digits
    access = "SP" + "".join(secrets.choice(alphabet) for _ in range(18))
    return KeyPair(access, secrets.token_urlsafe(30))


def load_or_create(path: Path) -> list[KeyPair]:
    """The key pairs in ``path``; creates the file with one fresh pair if it is missing."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        pair = _new_pair()
        doc = {
            "keys": [
                {"access_key_id": pair.access_key_id, "secret_access_key": pair.secret_access_key}
            ]
        }
        # Created with 0600 from the start: no moment where another user could read it. A
        # link never replaces a file: when `sageport serve &` and `sageport env` both create
        # it on a first start, the first one wins and both read its keys.
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(doc, fh, indent=2)
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass
            except OSError:  # a filesystem without hard links
                if not path.exists():
                    os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    doc = json.loads(path.read_text())
    return [KeyPair(k["access_key_id"], k["secret_access_key"]) for k in doc["keys"]]
