"""Every key the server accepts: the user's own (``credentials.json``) and the jobs' own.

:class:`AccessKeys` is both the verifier's :class:`~sageport.domain.keys.KeyLookup` and the
scheduler's :class:`~sageport.domain.keys.KeyIssuer`. A training job, a processing job and an
endpoint each get one key pair (``SPJ…``) when their first process is about to start, shared
by all their hosts; it is revoked when the job reaches a terminal status or the endpoint is
deleted. Keys are rows in the database (``store.keys``), so a job re-adopted after a server
restart keeps a working key.

Revocation takes effect for the very next request: live keys are cached in memory, and the
cache is changed only here, under a lock, in the same step that writes the database. A miss
reads the database (a restarted server learns the keys of jobs that still run; a revoked or
unknown id answers None and is not cached, so garbage ids cannot grow the cache).
"""

from __future__ import annotations

import logging
import secrets
import string
import threading
from collections.abc import Iterable

from sageport.clock import Clock
from sageport.domain.keys import JOB_KEY_PREFIX, KeyPair
from sageport.store import keys as store
from sageport.store.database import Database

log = logging.getLogger(__name__)

#: a job key id: the prefix and 17 more characters (20, as AWS key ids are)
JOB_KEY_ID_LENGTH = 20
_ALPHABET = string.ascii_uppercase + string.digits


def new_job_key(owner_arn: str) -> KeyPair:
    access = JOB_KEY_PREFIX + "".join(
        secrets.choice(_ALPHABET) for _ in range(JOB_KEY_ID_LENGTH - len(JOB_KEY_PREFIX))
    )
    return KeyPair(access, secrets.token_urlsafe(30), owner_arn)


class AccessKeys:
    """The static keys plus the live job keys; mints and revokes the latter."""

    def __init__(self, static: Iterable[KeyPair], db: Database, clock: Clock) -> None:
        self._static = {k.access_key_id: k for k in static}
        self._db = db
        self._clock = clock
        self._lock = threading.Lock()
        self._live: dict[str, KeyPair] = {}
        """live job keys by access key id"""

    @property
    def static_ids(self) -> frozenset[str]:
        """The ids of the server user's own keys (none of them ever enters a job)."""
        return frozenset(self._static)

    def get(self, access_key_id: str) -> KeyPair | None:
        static = self._static.get(access_key_id)
        if static is not None:
            return static
        key = self._live.get(access_key_id)
        if key is not None or not access_key_id.startswith(JOB_KEY_PREFIX):
            return key
        with self._lock:
            key = self._live.get(access_key_id)
            if key is None:
                with self._db.read() as conn:
                    stored = store.get_key(conn, access_key_id)
                if stored is None or not stored.live:
                    return None
                key = KeyPair(stored.access_key_id, stored.secret_access_key, stored.owner_arn)
                self._live[key.access_key_id] = key
            return key

    def issue(self, owner_arn: str) -> KeyPair:
        with self._lock:
            with self._db.begin() as conn:
                stored = store.live_key_of(conn, owner_arn)
                if stored is not None:
                    key = KeyPair(stored.access_key_id, stored.secret_access_key, owner_arn)
                else:
                    key = new_job_key(owner_arn)
                    while key.access_key_id in self._static:  # a clash: 36**17 to one
                        key = new_job_key(owner_arn)
                    store.insert_key(
                        conn,
                        key.access_key_id,
                        key.secret_access_key,
                        owner_arn,
                        self._clock.now(),
                    )
                    log.info("minted access key %s for %s", key.access_key_id, owner_arn)
            self._live[key.access_key_id] = key
            return key

    def revoke(self, owner_arn: str) -> None:
        with self._lock:
            with self._db.begin() as conn:
                revoked = store.revoke_owner(conn, owner_arn, self._clock.now())
            for access_key_id in revoked:
                self._live.pop(access_key_id, None)
        if revoked:
            log.info("revoked access key(s) %s of %s", ", ".join(revoked), owner_arn)
