"""What a handler may call, as one object: ``ctx.services``.

The composition root (``sageport.wiring``) builds it; this module only names its parts, so
the API depends on the services layer and nothing above or beside it. The scheduler appears
only as :class:`Background`, what the server starts and stops with itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sageport.catalog import Catalog
from sageport.clock import Clock
from sageport.services.endpoint_configs import EndpointConfigService
from sageport.services.endpoints import EndpointService
from sageport.services.keys import AccessKeys
from sageport.services.logs import LogService
from sageport.services.models import ModelService
from sageport.services.processing import ProcessingJobService
from sageport.services.tags import TagService
from sageport.services.training import TrainingJobService
from sageport.serving.router import TrafficRouter
from sageport.serving.upstream import UpstreamPool
from sageport.settings import Settings
from sageport.storage.objectstore import ObjectStore
from sageport.store.database import Database


class Background(Protocol):
    """The work that runs beside the API (the scheduler loop), started and stopped with the
    server's lifespan."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass
class Services:
    """Everything a handler may call. Handlers reach it as ``ctx.services``."""

    settings: Settings
    clock: Clock
    db: Database
    objects: ObjectStore
    models: ModelService
    endpoint_configs: EndpointConfigService
    tags: TagService
    logs: LogService
    catalog: Catalog
    training: TrainingJobService
    processing: ProcessingJobService
    endpoints: EndpointService
    router: TrafficRouter
    upstream: UpstreamPool
    background: Background
    """The scheduler loop: started when the server starts, stopped when it stops."""
    keys: AccessKeys
    """Every key the server accepts: the user's own and the live job keys (``services.keys``)."""

    def close(self) -> None:
        self.db.close()
