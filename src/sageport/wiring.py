"""The composition root: every collaborator of the server, built in dependency order.

:func:`build_services` opens the database and the object store, discovers the GPUs, builds the
allocator, the services, the scheduler's runners and the scheduler, each given what it needs
when it is built: nothing is wired by assigning attributes afterwards. The scheduler's runners
need the services; the services only need two callbacks into the scheduler (``wake``: there is
news; ``forget``: a job was deleted), which exist before both (:class:`Wakeup`,
:func:`remove_job_dir`). :func:`build_app` is what ``sageport serve`` runs. This is the one
module that may import every layer below the CLI (``tests/unit/test_layers.py``); nothing
here is global, so two servers can live in one process, and tests build their own.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import partial

from starlette.applications import Starlette

from sageport.api.app import create_app
from sageport.backends.base import Backend
from sageport.backends.local import hidden_folders
from sageport.backends.registry import get_backend
from sageport.catalog import load_catalog
from sageport.clock import Clock, SystemClock
from sageport.gpu.discovery import discovery_from_env
from sageport.scheduler.allocator import Allocator, GpuMatching
from sageport.scheduler.endpoints import EndpointRunner, EndpointRunnerConfig
from sageport.scheduler.jobs import JobRunner, RunnerConfig, remove_job_dir
from sageport.scheduler.loop import Scheduler, Wakeup
from sageport.scheduler.ports import PortBook
from sageport.scheduler.processing import ProcessingKind
from sageport.scheduler.queue import JobQueue
from sageport.scheduler.telemetry import TelemetryConfig, TelemetryRunner, WatchedJobs
from sageport.scheduler.training import TrainingKind
from sageport.services.admission import Admission
from sageport.services.container import Services
from sageport.services.credentials import load_or_create
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
from sageport.storage.objectstore import open_object_store
from sageport.store.database import Database


def build_app(settings: Settings) -> Starlette:
    """The server ``sageport serve`` runs: the services built here, closed on shutdown."""
    return create_app(settings, build_services(settings), close_services=True)


class StartupError(ValueError):
    """A setting (or ``SAGEPORT_FAKE_GPUS``) the server cannot start with; the message says
    which and what is accepted, in one line fit for a terminal."""


def build_services(
    settings: Settings,
    clock: Clock | None = None,
    *,
    backend: Backend | None = None,
    env: Mapping[str, str] | None = None,
) -> Services:
    """Open the database and the object store, discover GPUs, and wire the services.

    Settings that cannot work (a fake GPU spec that does not parse, an unknown
    ``gpu_matching``, a non-positive overcommit) raise :class:`StartupError` before anything
    is opened.
    """
    clock = clock or SystemClock()
    env = dict(os.environ if env is None else env)
    matching = _check_settings(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.db_url)
    db.create_all()
    objects = open_object_store(settings)
    catalog = load_catalog()
    discovery_env = {
        **env,
        **({"SAGEPORT_FAKE_GPUS": settings.fake_gpus} if settings.fake_gpus else {}),
    }
    try:
        discovery = discovery_from_env(discovery_env)
    except ValueError as exc:
        where = " (fake_gpus in sageport.toml)" if settings.fake_gpus else ""
        raise StartupError(f"{exc}{where}") from None
    gpus = discovery.discover()
    cpus = _usable_cpus()
    allocator = Allocator(
        gpus.devices,
        float(len(cpus)),
        _memory_gib(),
        cpu_overcommit=settings.cpu_overcommit,
        memory_overcommit=settings.memory_overcommit,
        matching=matching,
        cpu_fallback=settings.cpu_fallback,
        cpu_affinity=settings.cpu_affinity,
        cpu_ids=cpus,
    )
    admission = Admission(catalog, allocator, settings.images)
    logs = LogService(db, clock)
    backend = backend or get_backend(
        "local", hidden=hidden_folders(settings.data_dir), uid=settings.sandbox_uid
    )
    backend.sandbox_available()  # probed once here, not at the first job
    # "auto" without a working bwrap still asks for the sandbox: the backend then refuses
    # each job, saying how to install it; only "off" runs jobs unsandboxed.
    sandbox = settings.sandbox != "off"
    # The server user's keys stay with the verifier: each job, processing job and endpoint
    # gets a key of its own from ``keys``, revoked when it ends.
    keys = AccessKeys(load_or_create(settings.credentials_file), db, clock)
    job_config = RunnerConfig(
        jobs_dir=settings.jobs_dir,
        endpoint_url=settings.endpoint_url,
        region=settings.region,
        keys=keys,
        images=settings.images,
        sandbox=sandbox,
        sandbox_note="sandbox = off in settings",
        stop_grace_s=settings.stop_grace_seconds,
        server_env=env,
        max_log_bytes=settings.max_log_bytes_per_host,
    )
    # The services tell the scheduler there is news through this, built before either; a
    # deleted job's host folders go with it (remove_job_dir needs no runner).
    wakeup = Wakeup()
    training_kind, processing_kind = TrainingKind(), ProcessingKind()
    training = TrainingJobService(
        db,
        clock,
        settings,
        admission,
        wake=wakeup.ring,
        forget=partial(remove_job_dir, job_config, training_kind),
    )
    processing = ProcessingJobService(
        db,
        clock,
        settings,
        admission,
        wake=wakeup.ring,
        forget=partial(remove_job_dir, job_config, processing_kind),
    )
    queue = JobQueue()  # one FIFO over training and processing jobs
    ports = PortBook()  # and one book of launcher ports
    job_runners = [
        JobRunner(
            kind,
            service,
            objects,
            logs,
            backend,
            allocator,
            catalog,
            clock,
            job_config,
            queue,
            ports,
        )
        for kind, service in ((training_kind, training), (processing_kind, processing))
    ]
    models = ModelService(db, clock, settings)
    configs = EndpointConfigService(db, clock, settings)
    endpoints = EndpointService(db, clock, settings, configs, admission, wake=wakeup.ring)
    router = TrafficRouter()
    upstream = UpstreamPool()
    endpoint_runner = EndpointRunner(
        endpoints,
        models,
        objects,
        logs,
        backend,
        allocator,
        catalog,
        router,
        upstream,
        clock,
        EndpointRunnerConfig(
            jobs_dir=settings.jobs_dir,
            endpoint_url=settings.endpoint_url,
            region=settings.region,
            keys=keys,
            images=settings.images,
            sandbox=sandbox,
            server_env=env,
        ),
    )
    telemetry = TelemetryRunner(
        [
            WatchedJobs(training, TrainingKind.log_group, training_kind.host_names),
            WatchedJobs(processing, ProcessingKind.log_group, processing_kind.host_names),
        ],
        discovery,
        logs,
        clock,
        TelemetryConfig(
            interval_s=settings.gpu_sample_interval_seconds,
            idle_window_s=settings.gpu_idle_warning_seconds,
            warn_idle=not gpus.fake,  # fake GPUs always read idle: the warning would be noise
        ),
    )
    scheduler = Scheduler(
        [*job_runners, endpoint_runner, telemetry], settings.poll_interval_seconds, wakeup
    )
    return Services(
        settings=settings,
        clock=clock,
        db=db,
        objects=objects,
        models=models,
        endpoint_configs=configs,
        tags=TagService(db, clock),
        logs=logs,
        catalog=catalog,
        training=training,
        processing=processing,
        endpoints=endpoints,
        router=router,
        upstream=upstream,
        background=scheduler,
        keys=keys,
    )


def _check_settings(settings: Settings) -> GpuMatching:
    """The GPU and accounting settings, checked; the GPU matching they name."""
    try:
        matching = GpuMatching(settings.gpu_matching)
    except ValueError:
        accepted = " or ".join(repr(m.value) for m in GpuMatching)
        raise StartupError(
            f"gpu_matching must be {accepted}, not {settings.gpu_matching!r} (sageport.toml)"
        ) from None
    for name in ("cpu_overcommit", "memory_overcommit"):
        value = getattr(settings, name)
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise StartupError(f"{name} must be a number greater than 0, not {value!r}")
    for name in ("cpu_fallback", "cpu_affinity"):
        if not isinstance(getattr(settings, name), bool):
            raise StartupError(f"{name} must be true or false, not {getattr(settings, name)!r}")
    if not isinstance(settings.fake_gpus, str):
        raise StartupError(f'fake_gpus must be a string such as "4", not {settings.fake_gpus!r}')
    return matching


def _usable_cpus() -> list[int]:
    """The logical CPUs this process may run on (its affinity mask), what jobs share."""
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return list(range(os.cpu_count() or 1))


def _memory_gib() -> float:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        return 16.0
