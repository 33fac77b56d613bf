"""botocore's service models, loaded once per app: the schema for every request and response."""

from __future__ import annotations

from botocore.loaders import create_loader
from botocore.model import ServiceModel


class ServiceModels:
    """Loads and caches botocore service models by name (``sagemaker``, ``logs``, ``s3`` ...)."""

    def __init__(self) -> None:
        self._loader = create_loader()
        self._cache: dict[str, ServiceModel] = {}

    def get(self, service: str) -> ServiceModel:
        model = self._cache.get(service)
        if model is None:
            data = self._loader.load_service_model(service, "service-2")
            model = ServiceModel(data, service_name=service)
            self._cache[service] = model
        return model
