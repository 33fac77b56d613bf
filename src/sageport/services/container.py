"""The wiring: one object holding every service, built explicitly from :class:`Settings`.

``create_app(settings)`` calls :func:`build_services`; tests build their own. Nothing here is
global, so two servers can live in one process.
"""

from __future__ import annotations

from dataclasses import dataclass

from sageport.clock import Clock, SystemClock
from sageport.services.endpoint_configs import EndpointConfigService
from sageport.services.logs import LogService
from sageport.services.models import ModelService
from sageport.services.tags import TagService
from sageport.settings import Settings
from sageport.storage.objectstore import ObjectStore, open_object_store
from sageport.store.database import Database


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

    def close(self) -> None:
        self.db.close()


def build_services(settings: Settings, clock: Clock | None = None) -> Services:
    """Open the database and the object store and build the services over them."""
    clock = clock or SystemClock()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.db_url)
    db.create_all()
    objects = open_object_store(settings)
    tags = TagService(db, clock)
    return Services(
        settings=settings,
        clock=clock,
        db=db,
        objects=objects,
        models=ModelService(db, clock, settings),
        endpoint_configs=EndpointConfigService(db, clock, settings),
        tags=tags,
        logs=LogService(db, clock),
    )
