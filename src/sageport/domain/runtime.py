"""A job's runtime state, typed: what the scheduler learns about a job while it runs.

The validated request is the resource's ``spec``; everything the scheduler adds (its grants,
its hosts' processes, log offsets, exits, artifacts, warnings, timestamps) is one
:class:`JobRuntime`, stored as a JSON object in the resource's ``extra`` column together with
its record ``version`` (``store.resources.write_state`` bumps it by compare-and-set). The JSON
keys are the ones the untyped dict used, so rows written before this type existed load
unchanged: a missing key is its field's default, and a key this version does not know is kept
in ``unknown`` and written back as it was.

Per-host state is kept as maps keyed by host name (``hosts``, ``exits``, ``log_offsets`` ...):
that is the stored layout, and each map is read and written by one step of the runner.
Handles and exits stay JSON here (their types belong to ``backends``, above ``domain``).
Timestamps are ISO 8601 strings, as the clock's ``isoformat()`` gives them.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from typing import Any


def _split(cls: type, data: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """A stored record's known fields (nulls dropped: they read as defaults) and the rest."""
    data = dict(data or {})
    known = {f.name for f in dataclasses.fields(cls)} - {"unknown"}
    values = {k: v for k, v in data.items() if k in known and v is not None}
    if "version" in values:
        values["version"] = int(values["version"])
    return values, {k: v for k, v in data.items() if k not in known}


def _dump(record: Any, unknown: dict[str, Any]) -> dict[str, Any]:
    """The stored form: the unknown keys, then every field that is set (not None or empty)."""
    out: dict[str, Any] = dict(unknown)
    for f in dataclasses.fields(record):
        if f.name == "unknown":
            continue
        value = getattr(record, f.name)
        if value is None or value in ([], {}):
            continue
        out[f.name] = value.value if isinstance(value, enum.Enum) else value
    return out


class StopReason(enum.StrEnum):
    """Why a job was moved to Stopping, when it was not a client's Stop* call."""

    MAX_RUNTIME = "max_runtime"
    """``MaxRuntimeInSeconds`` passed: the job ends MaxRuntimeExceeded, not Stopped."""


@dataclass(frozen=True)
class JobRuntime:
    """The runtime state of one training or processing job (every field optional)."""

    version: int = 0
    """Bumped on every write; a write names the version it read (compare-and-set)."""

    # -- admission -----------------------------------------------------------------------
    grants: list[dict[str, Any]] = field(default_factory=list)
    """One ``HostGrant.to_json()`` per host, in host order."""
    sandbox: bool | None = None
    """Whether the job runs sandboxed (fixed at admission; None: the server's setting)."""
    admitted_at: str | None = None
    queue_message: str | None = None
    """What a queued job waits for (shown while it is Starting)."""

    # -- hosts ---------------------------------------------------------------------------
    hosts: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Host name → its process's ``HostHandle.to_json()``."""
    started_at: str | None = None
    exits: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Host name → ``ExitInfo.to_json()``, once every host has exited."""
    terminated_at: str | None = None
    """When SIGTERM was sent to every host (once; SIGKILL follows after the grace)."""
    stop_reason: StopReason | None = None

    # -- logs and metrics ----------------------------------------------------------------
    log_streams: dict[str, str] = field(default_factory=dict)
    log_offsets: dict[str, int] = field(default_factory=dict)
    error_tails: dict[str, list[str]] = field(default_factory=dict)
    log_truncated: dict[str, str] = field(default_factory=dict)
    """Host name → the truncation note its log ended with."""
    tails_frozen: list[str] = field(default_factory=list)
    """Hosts whose launcher reported a failed worker: their error tail is kept as it was."""
    metric_states: dict[str, list[float]] = field(default_factory=dict)

    # -- GPUs ----------------------------------------------------------------------------
    gpu_warnings: list[str] = field(default_factory=list)
    gpu_idle_warning: str | None = None
    gpu_telemetry: dict[str, Any] = field(default_factory=dict)

    # -- the end -------------------------------------------------------------------------
    uploaded: dict[str, list[float]] = field(default_factory=dict)
    """What ``Continuous`` outputs have uploaded so far (path → size, mtime)."""
    ended_at: str | None = None
    failure_reason: str | None = None
    final_metrics: list[dict[str, Any]] | None = None
    model_artifacts: str | None = None
    output_artifacts: str | None = None
    exit_message: str | None = None

    unknown: dict[str, Any] = field(default_factory=dict)
    """Stored keys this version does not know (a newer server wrote them): kept as they were."""

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> JobRuntime:
        """Load a stored record; missing keys take their defaults, null ones too."""
        values, unknown = _split(cls, data)
        if "stop_reason" in values:
            values["stop_reason"] = StopReason(values["stop_reason"])
        return cls(**values, unknown=unknown)

    def to_json(self) -> dict[str, Any]:
        """The stored form: the unknown keys, then every field that is set (not empty)."""
        return _dump(self, self.unknown)

    @property
    def since(self) -> str | None:
        """The job's start on its hosts: admission (staging counts, as on SageMaker)."""
        return self.admitted_at or self.started_at


@dataclass(frozen=True)
class StoredOutputs:
    """What a kind's ``store_outputs`` uploaded, for Describe*, and what its log should say."""

    model_artifacts: str | None = None
    output_artifacts: str | None = None
    exit_message: str | None = None
    """A processing job's ``/opt/ml/output/message``, shown as ``ExitMessage``."""
    log_lines: list[str] = field(default_factory=list)
    """Notes for the job's log (files an upload left out, e.g. symlinks)."""


class ReplicaSlot(enum.StrEnum):
    """Where an endpoint keeps a set of its model-server instances (the stored key)."""

    SERVING = "replicas"
    """Instances in the routes (or being brought up for a new endpoint)."""
    PENDING = "pending_replicas"
    """Instances an update is bringing up, not in the routes yet."""


#: SageMaker's container startup health check: /ping must pass within 4 minutes unless the
#: variant's ContainerStartupHealthCheckTimeoutInSeconds says otherwise.
DEFAULT_STARTUP_TIMEOUT_S = 240.0


@dataclass
class EndpointInstance:
    """One instance of a production variant: a model-server process and what it holds.

    Named for SageMaker's "instance" of a variant (``InitialInstanceCount``), and so that it
    does not collide with ``serving.router.Replica``, the routing entry the router builds from
    the ready ones. Mutable: the runner marks it ready, counts its restarts and relaunches it
    in place, then stores the list it belongs to. Stored under the endpoint's ``replicas``,
    ``pending_replicas`` and ``retired`` keys, as the plain dicts the untyped code wrote (the
    same keys), so rows written before this type existed load unchanged. The grant and the
    process handle stay JSON (their types belong to ``scheduler`` and ``backends``).
    """

    id: str
    """``g<generation>-<variant>-<n>``: never reused, so it names the host folder too."""
    variant: str
    index: int = 0
    """Its index within the variant (``n - 1``)."""
    instance_type: str = ""
    port: int = 0
    """The model server's loopback port."""
    owner: str = ""
    """Its allocator holding (``endpoint/<name>/<id>``), one per instance: released one by one."""
    grant: dict[str, Any] = field(default_factory=dict)
    """``scheduler.allocator.HostGrant.to_json()``: its GPUs, CPUs and memory."""
    handle: dict[str, Any] = field(default_factory=dict)
    """``backends.base.HostHandle.to_json()`` of its current run."""
    ready: bool = False
    """It answered /ping 200 (since its last start)."""
    restarts: int = 0
    last_restart: dict[str, str] | None = None
    """``{"time", "reason"}`` of the last restart in place."""
    runs: int = 0
    """Relaunches so far (each run has its own run folder)."""
    image: str = ""
    startup_timeout_s: float = DEFAULT_STARTUP_TIMEOUT_S
    """ContainerStartupHealthCheckTimeoutInSeconds."""

    unknown: dict[str, Any] = field(default_factory=dict)
    """Stored keys this version does not know: kept as they were."""

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EndpointInstance:
        values, unknown = _split(cls, data)
        if "index" not in values:  # rows from before instances stored their index
            values["index"] = int(str(values["id"]).rsplit("-", 1)[-1]) - 1
        for name, kind in (("index", int), ("port", int), ("restarts", int), ("runs", int)):
            if name in values:
                values[name] = kind(values[name])
        if "startup_timeout_s" in values:
            values["startup_timeout_s"] = float(values["startup_timeout_s"])
        values["ready"] = bool(values.get("ready", False))
        return cls(**values, unknown=unknown)

    def to_json(self) -> dict[str, Any]:
        """The stored form: every key the untyped dict had (``runs`` and ``last_restart`` only
        once there was a relaunch or a restart, as before)."""
        out: dict[str, Any] = dict(self.unknown)
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "unknown" or (f.name in ("runs", "last_restart") and not value):
                continue
            out[f.name] = value
        return out

    def copy(self) -> EndpointInstance:
        """A copy to change without changing the stored list it came from."""
        return dataclasses.replace(self)


def _instances(data: Any) -> list[EndpointInstance]:
    return [i if isinstance(i, EndpointInstance) else EndpointInstance.from_json(i) for i in data]


_INSTANCE_LISTS = ("replicas", "pending_replicas", "retired")


@dataclass(frozen=True)
class EndpointRuntime:
    """The runtime state of one endpoint (every field optional).

    Its instances are :class:`EndpointInstance` records in three lists: ``replicas`` (serving,
    or being brought up for a new endpoint), ``pending_replicas`` (an update's new ones) and
    ``retired`` (stopped by a rolling update, started again on a rollback).
    """

    version: int = 0
    """Bumped on every write; a write names the version it read (compare-and-set)."""
    config: str | None = None
    """The endpoint configuration in service (None: the one it was created with)."""
    generation: int = 0
    """Bumped per bring-up, so instance ids are never reused."""
    counts: dict[str, int] = field(default_factory=dict)
    """Variant → instance count an UpdateEndpointWeightsAndCapacities set."""
    weights: dict[str, float] = field(default_factory=dict)
    pending: dict[str, Any] | None = None
    """The update in progress: ``config``, ``counts``, ``weights``, ``retain``."""
    replicas: list[EndpointInstance] = field(default_factory=list)
    pending_replicas: list[EndpointInstance] = field(default_factory=list)
    retired: list[EndpointInstance] = field(default_factory=list)
    """Instances a rolling update stopped to make room (started again on a rollback)."""
    variant_notes: dict[str, Any] = field(default_factory=dict)
    queue_message: dict[str, str] | None = None
    """What a bring-up waits for: ``{"message", "since"}``."""
    rollout: dict[str, str] | None = None
    """A rolling update's note: ``{"message", "since"}``."""
    failure_reason: str | None = None

    unknown: dict[str, Any] = field(default_factory=dict)
    """Stored keys this version does not know (a newer server wrote them): kept as they were."""

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> EndpointRuntime:
        values, unknown = _split(cls, data)
        if "generation" in values:
            values["generation"] = int(values["generation"])
        for key in _INSTANCE_LISTS:
            if key in values:
                values[key] = _instances(values[key])
        return cls(**values, unknown=unknown)

    def to_json(self) -> dict[str, Any]:
        out = _dump(self, self.unknown)
        for key in _INSTANCE_LISTS:
            if key in out:
                out[key] = [i.to_json() for i in out[key]]
        return out

    def slot(self, slot: ReplicaSlot) -> list[EndpointInstance]:
        return self.replicas if slot is ReplicaSlot.SERVING else self.pending_replicas

    def with_slot(self, slot: ReplicaSlot, replicas: list[EndpointInstance]) -> EndpointRuntime:
        if slot is ReplicaSlot.SERVING:
            return dataclasses.replace(self, replicas=list(replicas))
        return dataclasses.replace(self, pending_replicas=list(replicas))
