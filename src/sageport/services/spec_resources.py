"""Resources that are their request and nothing more: models and endpoint configurations.

Neither changes once created and nothing runs for it: a stored one is its validated request
(less ``Tags``) as its spec, plus an ARN and a creation time, and ``Describe*`` is the spec
with those. So create, get, ``List*`` and delete are the same for both and live here; each
subclass names what differs (kind, ARN type, the request's name field, the word its errors
use) and adds its own checks before :meth:`SpecService.store`. The error wording is real
SageMaker's: the SDK's ``_deployment_entity_exists`` looks for "Could not find".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from sageport.clock import Clock
from sageport.domain.arns import sagemaker_arn
from sageport.errors import ValidationException
from sageport.services import listing
from sageport.services.tags import tag_pairs
from sageport.settings import Settings
from sageport.store import resources, tags
from sageport.store.database import Connection, Database
from sageport.store.errors import DuplicateName, NotFound
from sageport.store.resources import Resource


class SpecService:
    """Create, get, describe, list and delete one kind of request-only resource."""

    kind: ClassVar[str]
    arn_type: ClassVar[str]
    name_field: ClassVar[str]
    """The request's name member (``ModelName``); ``<Kind>Arn`` is the ARN member."""
    summaries_field: ClassVar[str]
    label: ClassVar[str]
    """What its errors call it: 'Could not find {label} "{arn}".'"""

    def __init__(self, db: Database, clock: Clock, settings: Settings) -> None:
        self._db = db
        self._clock = clock
        self._settings = settings

    def arn(self, name: str) -> str:
        return sagemaker_arn(self._settings.region, self._settings.account_id, self.arn_type, name)

    def not_found(self, arn: str) -> ValidationException:
        return ValidationException(f'Could not find {self.label} "{arn}".')

    def store(
        self,
        params: dict[str, Any],
        check: Callable[[Connection], None] | None = None,
    ) -> dict[str, Any]:
        """Store the request (its Tags as tags) and answer ``{"<Kind>Arn": arn}``; ``check``
        runs first in the same transaction (what the resource refers to must exist)."""
        arn = self.arn(params[self.name_field])
        spec = {k: v for k, v in params.items() if k != "Tags"}
        try:
            with self._db.begin() as conn:
                if check is not None:
                    check(conn)
                resources.create(
                    conn,
                    kind=self.kind,
                    name=params[self.name_field],
                    arn=arn,
                    spec=spec,
                    now=self._clock.now(),
                )
                tags.put(conn, arn, tag_pairs(params.get("Tags", [])))
        except DuplicateName:
            raise ValidationException(
                f'Cannot create already existing {self.label} "{arn}".'
            ) from None
        return {f"{self.kind}Arn": arn}

    def get(self, name: str) -> Resource:
        """The stored resource, or SageMaker's 'Could not find ...' error."""
        arn = self.arn(name)
        with self._db.read() as conn:
            found = resources.get_by_arn(conn, arn)
        if found is None or found.kind != self.kind:
            raise self.not_found(arn)
        return found

    def exists(self, name: str) -> bool:
        with self._db.read() as conn:
            found = resources.get_by_arn(conn, self.arn(name))
        return found is not None and found.kind == self.kind

    def describe(self, params: dict[str, Any]) -> dict[str, Any]:
        found = self.get(params[self.name_field])
        return {**found.spec, **self.summary(found)}

    def list(self, params: dict[str, Any]) -> dict[str, Any]:
        flt = listing.resource_filter(params)
        return listing.answer(self._db, self.kind, flt, self.summary, self.summaries_field)

    def delete(self, params: dict[str, Any]) -> dict[str, Any]:
        found = self.get(params[self.name_field])
        try:
            with self._db.begin() as conn:
                resources.delete_resource(conn, self.kind, found.name)
        except NotFound:
            raise self.not_found(found.arn) from None
        return {}

    def summary(self, found: Resource) -> dict[str, Any]:
        """Its ``List*`` entry: name, ARN, creation time."""
        return {
            self.name_field: found.name,
            f"{self.kind}Arn": found.arn,
            "CreationTime": found.created_at,
        }
