"""Endpoint configurations: Create/Describe/List/DeleteEndpointConfig.

Like a model, an endpoint configuration is its validated request plus ARN and creation time
(``services.spec_resources``). Creating one checks, as SageMaker does, that every model its
variants name exists, and refuses the features sageport does not serve (``services.
unsupported``: data capture, async and serverless inference, shadow variants, ...).
"""

from __future__ import annotations

from typing import Any

from sageport.domain.arns import sagemaker_arn
from sageport.errors import ValidationException
from sageport.services import unsupported
from sageport.services.models import ARN_TYPE as MODEL_ARN_TYPE
from sageport.services.models import KIND as MODEL_KIND
from sageport.services.spec_resources import SpecService
from sageport.store import resources
from sageport.store.database import Connection

KIND = "EndpointConfig"
ARN_TYPE = "endpoint-config"


class EndpointConfigService(SpecService):
    """Use cases on endpoint configurations."""

    kind = KIND
    arn_type = ARN_TYPE
    name_field = "EndpointConfigName"
    summaries_field = "EndpointConfigs"
    label = "endpoint configuration"

    def create(self, params: dict[str, Any]) -> dict[str, Any]:
        unsupported.check_endpoint_config(params)
        variants = [*params["ProductionVariants"], *params.get("ShadowProductionVariants", [])]
        names = [v["VariantName"] for v in variants]
        if len(set(names)) != len(names):
            raise ValidationException(
                "Variant names must be unique within an endpoint configuration."
            )

        def models_exist(conn: Connection) -> None:
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

        return self.store(params, check=models_exist)
