"""Models: CreateModel, DescribeModel, ListModels, DeleteModel.

A model is its validated CreateModel request (the spec) plus an ARN and a creation time;
nothing runs until an endpoint uses it. Error messages are real SageMaker's: the SDK's
``_deployment_entity_exists`` looks for ``ValidationException`` + "Could not find".
"""

from __future__ import annotations

from typing import Any

from sageport.clock import Clock
from sageport.domain.arns import sagemaker_arn
from sageport.errors import ValidationException
from sageport.services import listing
from sageport.services.tags import tag_pairs
from sageport.settings import Settings
from sageport.store import resources, tags
from sageport.store.database import Database
from sageport.store.errors import DuplicateName, NotFound
from sageport.store.resources import Resource

KIND = "Model"
ARN_TYPE = "model"


def not_found(arn: str) -> ValidationException:
    return ValidationException(f'Could not find model "{arn}".')


class ModelService:
    """Use cases on models; the only code that knows how a model is stored and described."""

    def __init__(self, db: Database, clock: Clock, settings: Settings) -> None:
        self._db = db
        self._clock = clock
        self._settings = settings

    def arn(self, name: str) -> str:
        return sagemaker_arn(self._settings.region, self._settings.account_id, ARN_TYPE, name)

    def create(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params["ModelName"]
        arn = self.arn(name)
        if not params.get("PrimaryContainer") and not params.get("Containers"):
            raise ValidationException(
                "Either PrimaryContainer or Containers must be specified for a model."
            )
        if params.get("PrimaryContainer") and params.get("Containers"):
            raise ValidationException("Specify PrimaryContainer or Containers, not both.")
        spec = {k: v for k, v in params.items() if k != "Tags"}
        try:
            with self._db.begin() as conn:
                resources.create(
                    conn, kind=KIND, name=name, arn=arn, spec=spec, now=self._clock.now()
                )
                tags.put(conn, arn, tag_pairs(params.get("Tags", [])))
        except DuplicateName:
            raise ValidationException(f'Cannot create already existing model "{arn}".') from None
        return {"ModelArn": arn}

    def get(self, name: str) -> Resource:
        """The stored model, or the SageMaker "Could not find model" error."""
        arn = self.arn(name)
        with self._db.read() as conn:
            found = resources.get_by_arn(conn, arn)
        if found is None or found.kind != KIND:
            raise not_found(arn)
        return found

    def exists(self, name: str) -> bool:
        with self._db.read() as conn:
            found = resources.get_by_arn(conn, self.arn(name))
        return found is not None and found.kind == KIND

    def describe(self, params: dict[str, Any]) -> dict[str, Any]:
        return _describe(self.get(params["ModelName"]))

    def list(self, params: dict[str, Any]) -> dict[str, Any]:
        flt = listing.resource_filter(params)
        with self._db.read() as conn:
            rows = resources.list_resources(conn, KIND, flt)
        summaries, token = listing.page(rows, flt, _summary)
        result: dict[str, Any] = {"Models": summaries}
        if token:
            result["NextToken"] = token
        return result

    def delete(self, params: dict[str, Any]) -> dict[str, Any]:
        found = self.get(params["ModelName"])
        try:
            with self._db.begin() as conn:
                resources.delete_resource(conn, KIND, found.name)
        except NotFound:
            raise not_found(found.arn) from None
        return {}


def _describe(model: Resource) -> dict[str, Any]:
    return {**model.spec, **_summary(model)}


def _summary(model: Resource) -> dict[str, Any]:
    return {"ModelName": model.name, "ModelArn": model.arn, "CreationTime": model.created_at}
