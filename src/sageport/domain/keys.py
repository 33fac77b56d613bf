"""Access keys: what a key pair is, and the two small interfaces around them.

A key pair either comes from ``credentials.json`` (the server user's own, ``owner_arn`` is
None) or was minted for one job, processing job or endpoint (``owner_arn`` is its ARN) and
lives only while that resource runs. Who mints and revokes (``services.keys``) and who
checks signatures (``api.auth``) meet here, in the layer both may import; the scheduler
receives a :class:`KeyIssuer` at construction and never sees the store or the API.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

#: job keys start with this, so a key seen in a log or a support request says what it is
JOB_KEY_PREFIX = "SPJ"


@dataclass(frozen=True)
class KeyPair:
    """An access key id and its secret; the secret is left out of ``repr`` (and so of logs
    and tracebacks that show the object)."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    owner_arn: str | None = None
    """The resource a job key belongs to; None for the server user's own keys."""

    @property
    def is_job_key(self) -> bool:
        return self.owner_arn is not None


@runtime_checkable
class KeyLookup(Protocol):
    """The key pair of an access key id, or None when the id is unknown or revoked."""

    def get(self, access_key_id: str) -> KeyPair | None: ...


class KeyIssuer(Protocol):
    """Mints and revokes the keys of running resources (one live key per owner ARN)."""

    def issue(self, owner_arn: str) -> KeyPair:
        """The owner's live key, minted if it has none (so a re-staged or restarted job,
        and every host of it, gets the same one)."""
        ...

    def revoke(self, owner_arn: str) -> None:
        """Revoke every key of the owner, effective for the next request; idempotent."""
        ...
