"""Models: CreateModel, DescribeModel, ListModels, DeleteModel.

A model is its validated CreateModel request (the spec) plus an ARN and a creation time;
nothing runs until an endpoint uses it. Stored, described, listed and deleted as every
request-only resource is (``services.spec_resources``); error messages are real SageMaker's.
"""

from __future__ import annotations

from typing import Any

from sageport.errors import ValidationException
from sageport.services import unsupported
from sageport.services.spec_resources import SpecService

KIND = "Model"
ARN_TYPE = "model"


class ModelService(SpecService):
    """Use cases on models; the only code that knows how a model is stored and described."""

    kind = KIND
    arn_type = ARN_TYPE
    name_field = "ModelName"
    summaries_field = "Models"
    label = "model"

    def create(self, params: dict[str, Any]) -> dict[str, Any]:
        if not params.get("PrimaryContainer") and not params.get("Containers"):
            raise ValidationException(
                "Either PrimaryContainer or Containers must be specified for a model."
            )
        if params.get("PrimaryContainer") and params.get("Containers"):
            raise ValidationException("Specify PrimaryContainer or Containers, not both.")
        unsupported.check_model(params)
        return self.store(params)
