"""botocore's SigV4 signer, fed the request as received, with the day's signing key kept.

The verifier asks botocore what a request's signature must be. Doing that per request the
straightforward way (a new ``Credentials``, signer and ``AWSRequest``, whose ``body`` runs a
full ``prepare()``, and the key derivation's four HMACs) costs about as much as everything
else on the InvokeEndpoint path together. Here:

- :class:`Received` is what botocore's ``canonical_request``/``string_to_sign`` read of a
  request (``method``, ``url``, ``params``, ``headers``, ``body``, ``context``), built
  directly from the received request;
- :class:`DaySigner` holds one botocore signer per (access key, service, region) and the
  derived signing key per date. The key is derived with the signer's own ``_sign`` in the
  SigV4 order, and trusted only once it has produced the very signature botocore's own
  ``signature()`` computes for the first request of that date; if it ever does not (a
  botocore that signs differently), botocore's ``signature()`` answers every request.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any

from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.credentials import Credentials

AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
#: dates whose signing key is kept per signer (requests are within the clock skew of now)
KEPT_DATES = 4


@functools.lru_cache(maxsize=64)
def amz_time(value: str) -> datetime | None:
    """An ``X-Amz-Date`` stamp in UTC, None if it is not one; every request of the same
    second carries the same stamp, so it is parsed once."""
    try:
        return datetime.strptime(value, AMZ_DATE_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None


class Headers(dict[str, str]):
    """Lower-cased header names, looked up without regard to case (as botocore's signer
    asks for ``X-Amz-Content-SHA256`` or ``Content-MD5``)."""

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and dict.__contains__(self, key.lower())

    def __getitem__(self, key: str) -> str:
        return dict.__getitem__(self, key.lower())


class Received:
    """The request as botocore's SigV4 signer reads it; only the headers the client signed."""

    __slots__ = ("body", "context", "headers", "method", "params", "url")

    def __init__(
        self, method: str, url: str, headers: Headers, body: bytes, timestamp: str
    ) -> None:
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.params: dict[str, str] = {}
        self.context: dict[str, Any] = {"timestamp": timestamp}


class DaySigner:
    """botocore's signer for one key, service and region; see the module docstring."""

    def __init__(self, access_key: str, secret_key: str, service: str, region: str) -> None:
        signer_cls = S3SigV4Auth if service == "s3" else SigV4Auth
        self.botocore: SigV4Auth = signer_cls(Credentials(access_key, secret_key), service, region)
        self._keys: dict[str, bytes] = {}
        self._trusted = True

    def signature(self, request: Received) -> str:
        """The signature ``request`` must carry."""
        signer = self.botocore
        string_to_sign = signer.string_to_sign(request, signer.canonical_request(request))
        date = request.context["timestamp"][0:8]
        key = self._keys.get(date)
        if key is not None:
            return str(signer._sign(key, string_to_sign, hex=True))
        expected = str(signer.signature(string_to_sign, request))
        if self._trusted:
            key = self._derive(date)
            if signer._sign(key, string_to_sign, hex=True) == expected:
                if len(self._keys) >= KEPT_DATES:
                    self._keys.clear()
                self._keys[date] = key
            else:
                self._trusted = False
        return expected

    def _derive(self, date: str) -> bytes:
        signer = self.botocore
        key = signer._sign(f"AWS4{signer.credentials.secret_key}".encode(), date)
        for part in (signer._region_name, signer._service_name, "aws4_request"):
            key = signer._sign(key, part)
        return bytes(key)
