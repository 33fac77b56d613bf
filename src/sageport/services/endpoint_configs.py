"""Endpoint configurations: Create/Describe/List/DeleteEndpointConfig.

Like a model, an endpoint configuration is its validated request plus ARN and creation time.
Creating one checks, as SageMaker does, that every model its variants name exists.
"""

from __future__ import annotations

from typing import Any

from sageport.clock import Clock
from sageport.domain.arns import sagemaker_arn
from sageport.errors import ValidationException
from sageport.services import listing
from sageport.services.models import ARN_TYPE as MODEL_ARN_TYPE
from sageport.services.models import KIND as MODEL_KIND
from sageport.services.tags import tag_pairs
from sageport.settings import Settings
from sageport.store import resources, tags
from sageport.store.database import Database
from sageport.store.errors import DuplicateName, NotFound
from sageport.store.resources import Resource

KIND = "EndpointConfig"
ARN_TYPE = "endpoint-config"


def not_found(arn: str) -> ValidationException:
    return ValidationException(f'Could not find endpoint configuration "{arn}".')


class EndpointConfigService:
    """Use cases on endpoint configurations."""

    def __init__(self, db: Database, clock: Clock, settings: Settings) -> None:
        self._db = db
        self._clock = clock
        self._settings = settings

    def arn(self, name: str) -> str:
        return sagemaker_arn(self._settings.region, self._settings.account_id, ARN_TYPE, name)

    def create(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params["EndpointConfigName"]
        arn = self.arn(name)
        variants = [*params["ProductionVariants"], *params.get("ShadowProductionVariants", [])]
        names = [v["VariantName"] for v in variants]
        if len(set(names)) != len(names):
            raise ValidationException(
                "Variant names must be unique within an endpoint configuration."
            )
        spec = {k: v for k, v in params.items() if k != "Tags"}
        try:
            with self._db.begin() as conn:
                for variant in variants:
                    model = variant.get("ModelName")
                    if model is None:
                        continue
                    model_arn = sagemaker_arn(
                        self._settings.region, self._settings.account_id, MODEL_ARN_TYPE, model
                    )
                    found = resources.get_by_arn(conn, model_arn)
                    if found is None or found.kind != MODEL_KIND:
                        raise ValidationException(f'Could not find model "{model_arn}".')
                resources.create(
                    conn, kind=KIND, name=name, arn=arn, spec=spec, now=self._clock.now()
                )
                tags.put(conn, arn, tag_pairs(params.get("Tags", [])))
        except DuplicateName:
            raise ValidationException(
                f'Cannot create already existing endpoint configuration "{arn}".'
            ) from None
        return {"EndpointConfigArn": arn}

    def get(self, name: str) -> Resource:
        """The stored configuration, or SageMaker's "Could not find endpoint configuration"."""
        arn = self.arn(name)
        with self._db.read() as conn:
            found = resources.get_by_arn(conn, arn)
        if found is None or found.kind != KIND:
            raise not_found(arn)
        return found

    def describe(self, params: dict[str, Any]) -> dict[str, Any]:
        config = self.get(params["EndpointConfigName"])
        return {
            **config.spec,
            "EndpointConfigName": config.name,
            "EndpointConfigArn": config.arn,
            "CreationTime": config.created_at,
        }

    def list(self, params: dict[str, Any]) -> dict[str, Any]:
        flt = listing.resource_filter(params)
        with self._db.read() as conn:
            rows = resources.list_resources(conn, KIND, flt)
        summaries, token = listing.page(rows, flt, _summary)
        result: dict[str, Any] = {"EndpointConfigs": summaries}
        if token:
            result["NextToken"] = token
        return result

    def delete(self, params: dict[str, Any]) -> dict[str, Any]:
        found = self.get(params["EndpointConfigName"])
        try:
            with self._db.begin() as conn:
                resources.delete_resource(conn, KIND, found.name)
        except NotFound:
            raise not_found(found.arn) from None
        return {}


def _summary(config: Resource) -> dict[str, Any]:
    return {
        "EndpointConfigName": config.name,
        "EndpointConfigArn": config.arn,
        "CreationTime": config.created_at,
    }
